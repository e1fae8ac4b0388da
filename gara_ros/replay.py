"""python -m gara_ros.replay: GaRA-SAM over a recorded bag, with no ROS install.

    python -m gara_ros.replay BAG --image-topic /camera/image_raw [--prompts FILE] [--prompt-topic /gara/prompts]
        [--out OUT] [--mode persist|track|once] [--depth-topic T --camera-info-topic T] [--params FILE]
        [--checkpoint FILE] [--adapter FILE] [--compare none|FILE]

The bag front end over gara_ros.core.SegmentCore, as segment_node.py is the live one. BAG (a rosbag2 folder with
sqlite3 or MCAP storage, or one .mcap or .db3 file) is streamed in the order it was recorded: each image and
recorded prompt (and, with --depth-topic, each depth image and camera info) goes to the core as the node would
receive it, with the node's settings (config/gara.yaml, or --params with a robot's params file). Prompts come from
the bag's prompt topic or from a prompt file (gara_ros/prompt_file.py); --mode track follows each object from its
own previous mask, as the node's track mode does. The jobs that the core hands out for an image and the messages
recorded after it are run before the next image, one per frame (a later job for a frame replaces an earlier one,
as the node's one-item slot does), and none is dropped for being late.

OUT, a new rosbag2 folder (MCAP by default), holds the image topic, the prompt topic if used, and per model the
node's outputs (<namespace>/result, mask, labels, overlay, and with depth points and markers), each with its
image's header (the 3D ones with the depth image's frame_id) and recorded at its image's time; and
OUT/overlay.mp4. --compare adds a second model (plain SAM, or another adapter): both models' outputs under
<namespace>/<label>/, and a side-by-side overlay (<namespace>/side_by_side, and the video).
"""

from __future__ import annotations

import argparse
import difflib
import re
import signal
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from gara_model.build import EMBEDDED_TINY_CHECKPOINT
from gara_model.checkpoint import CheckpointError
from gara_model.cli import one_line_errors
from gara_ros import conversions
from gara_ros.bag import (
    CAMERA_INFO_TYPE, DEPTH_TYPE, IMAGE_TYPES, PROMPT_TYPE, BagError, BagReader, BagWriter, message_types, typestore,
)
from gara_ros.conversions import ConversionError
from gara_ros.core import OUTPUT_ENCODINGS, OUTPUT_TYPES, OUTPUTS_3D, Job, Output, SegmentCore, Settings, load_predictor
from gara_ros.overlay import side_by_side
from gara_ros.prompt_file import FileObject, PromptFileError, read_prompt_file
from gara_ros.share import share_path

NODE = "segment_node"
DECODERS = {"sensor_msgs/msg/Image": conversions.image_to_rgb,
            "sensor_msgs/msg/CompressedImage": conversions.compressed_to_rgb}
# --mode -> the node parameter it switches on; all of CARRY_PARAMETERS that the node has are switched off first.
# once: an object is segmented only on the frames its prompts name (the node's default).
MODES = {"once": None, "persist": "persist", "track": "track"}
CARRY_PARAMETERS = ("persist", "track")
MODEL_PARAMETERS = ("sam_variant", "checkpoint", "adapter", "device", "image_size")  # also command-line options
VIDEO_NAME = "overlay.mp4"


class ReplayError(Exception):
    """A replay that cannot run as asked (parameters, model, output); the message is one line."""


# --- settings: the node's parameters -----------------------------------------------------------------
def read_parameters(path: Path) -> dict[str, Any]:
    """A ROS 2 params file's parameters for the segment node ("/**" or a key ending in segment_node), scalars
    only (QoS overrides do not apply to a bag)."""
    try:
        content = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ReplayError(f"{path}: no such params file") from None
    except (OSError, yaml.YAMLError) as error:
        raise ReplayError(f"{path}: not a readable params file: {' '.join(str(error).split())}") from None
    sections = [value.get("ros__parameters") for key, value in (content or {}).items()
                if isinstance(value, dict) and (key == "/**" or str(key).rstrip("/").split("/")[-1] == NODE)] \
        if isinstance(content, dict) else []
    if not sections or not all(isinstance(section, dict) for section in sections):
        raise ReplayError(f"{path}: expected a ROS 2 params file (/**: or {NODE}: with ros__parameters:)")
    return {name: value for section in sections for name, value in section.items() if not isinstance(value, dict)}


def node_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The node's defaults (its params file, config/gara.yaml), then --params, then the model options, --mode and
    --depth-topic."""
    parameters = read_parameters(share_path("config/gara.yaml"))
    if args.params is not None:
        for name, value in read_parameters(args.params).items():
            if name not in parameters:
                close = difflib.get_close_matches(name, parameters, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(parameters))}"
                raise ReplayError(f"{args.params}: unknown parameter {name!r} of {NODE} ({hint})")
            parameters[name] = value
    parameters.update({name: getattr(args, name) for name in MODEL_PARAMETERS if getattr(args, name) is not None})
    for name in CARRY_PARAMETERS:
        parameters[name] = name == MODES[args.mode]
    parameters["use_depth"] = args.depth_topic is not None  # the bag's topics say, not the robot's params file
    return parameters


# --- the models ----------------------------------------------------------------------------------------
def topic_name(text: str) -> str:
    """`text` as one ROS name token: letters, digits and _, not starting with a digit."""
    token = re.sub(r"[^A-Za-z0-9_]", "_", text) or "model"
    return token if not token[0].isdigit() else f"m_{token}"


def compared_parameters(parameters: dict[str, Any], spec: str) -> dict[str, Any]:
    """The model of --compare: the same base with the adapter file `spec`, or without adapter ("none": plain SAM;
    the embedded tiny base named by its file, since no checkpoint would mean the tiny GaRA-SAM)."""
    if spec == "none":
        if parameters["checkpoint"]:
            return parameters | {"adapter": ""}
        return parameters | {"sam_variant": "tiny", "checkpoint": str(EMBEDDED_TINY_CHECKPOINT), "adapter": ""}
    return parameters | {"adapter": spec}


def model_label(parameters: dict[str, Any]) -> str:
    """A short name for a model in topic names and captions: its adapter file's name, "gara" (the embedded tiny
    GaRA-SAM) or "sam" (no adapter)."""
    if parameters["adapter"]:
        return topic_name(Path(parameters["adapter"]).stem)
    return "gara" if not parameters["checkpoint"] else "sam"


@dataclass(frozen=True)
class RecordedFrame:
    """An image message of the bag and the time it was recorded: what the core keeps as a frame's message. The
    core reads only `header`; the decoder takes `msg`."""

    msg: Any
    log_time: int

    @property
    def header(self):
        return self.msg.header


class Lane:
    """One model over the bag: its core, and the jobs the core handed out since the last drain (one per frame: a
    later job for a frame replaces the earlier one, as the node's one-item slot does)."""

    def __init__(self, label: str, parameters: dict[str, Any], decode, emit):
        self.label = label
        try:
            predictor = load_predictor(parameters)
        except CheckpointError:  # names the file already
            raise
        except ValueError as error:  # a device, precision or size the model cannot take
            raise ReplayError(f"cannot load the model {label}: {error}") from None
        self._jobs: dict[int, Job] = {}
        self.core = SegmentCore(predictor, lambda frame: decode(frame.msg), Settings.from_parameters(parameters), emit,
                                self._submit)

    def _submit(self, job: Job) -> None:
        self._jobs[id(job.frame.msg)] = job

    def drain(self) -> list[Output]:
        """Runs the waiting jobs; their outputs (a frame that fails or has no valid object has none)."""
        jobs, self._jobs = list(self._jobs.values()), {}
        outputs = []
        for job in jobs:
            output = self.core.process(job, OUTPUT_ENCODINGS)
            if output is not None:
                self.core.record(output)
                outputs.append(output)
        return outputs


# --- prompts from a file ----------------------------------------------------------------------------
@dataclass
class PromptSchedule:
    """The objects of a prompt file in the order they appear. `due` gives the objects whose image has come: those of
    index <= the image's, or stamped at or before its stamp (an image the core could not use passes them on)."""

    objects: list[FileObject]
    delivered: set[str] = field(default_factory=set)

    def due(self, index: int, stamp_ns: int) -> list[FileObject]:
        due = [item for item in self.objects if item.prompt.object_id not in self.delivered and (
            (item.frame is not None and item.frame <= index)
            or (item.stamp_ns is not None and item.stamp_ns <= stamp_ns))]
        self.delivered.update(item.prompt.object_id for item in due)
        return due

    def pending(self) -> list[FileObject]:
        return [item for item in self.objects if item.prompt.object_id not in self.delivered]


# --- the video ---------------------------------------------------------------------------------------
class OverlayVideo:
    """The overlays as an MP4 (MPEG-4, OpenCV), written frame by frame; frames are padded to an even size, and a frame
    of another size is resized to the first one's."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps, self.frames = path, fps, 0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] = (0, 0)  # (W, H)

    def add(self, bgr: np.ndarray) -> None:
        if self._writer is None:
            self._size = (bgr.shape[1] + bgr.shape[1] % 2, bgr.shape[0] + bgr.shape[0] % 2)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
            if not self._writer.isOpened():
                raise ReplayError(f"{self.path}: OpenCV cannot write an MP4 video here (use --no-video)")
        if (bgr.shape[1], bgr.shape[0]) != self._size:
            bgr = cv2.copyMakeBorder(bgr, 0, bgr.shape[0] % 2, 0, bgr.shape[1] % 2, cv2.BORDER_CONSTANT) \
                if (bgr.shape[1] + bgr.shape[1] % 2, bgr.shape[0] + bgr.shape[0] % 2) == self._size \
                else cv2.resize(bgr, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(bgr)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


# --- the run ---------------------------------------------------------------------------------------
@dataclass
class Summary:
    """What a replay did."""

    frames: int = 0  # images read
    segmented: int = 0  # images with outputs (of the first model)
    seconds: float = 0.0  # from the first image to the last output
    interrupted: bool = False


@contextmanager
def stop_requests():
    """A flag set by Ctrl-C or SIGTERM, so that the run stops after the frame in progress and closes its output."""
    requested = {"signal": None}

    def handle(number, _frame):
        requested["signal"] = number

    previous = {number: signal.signal(number, handle) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def default_out(bag: Path) -> Path:
    """BAG_gara beside the bag (a bag file's name without its suffix)."""
    return bag.with_name((bag.stem if bag.is_file() else bag.name) + "_gara")


class Recorder:
    """The output side of a replay: the output topics, and for the outputs of each drain every model's messages,
    the side-by-side overlay (with --compare) and the video's frames."""

    def __init__(self, writer: BagWriter, labels: list[str], namespace: str, video: OverlayVideo | None,
                 use_depth: bool):
        self.writer, self.labels, self.video = writer, labels, video
        store = typestore()
        self.types = message_types(store)
        self.namespaces = [namespace + (f"/{label}" if len(labels) > 1 else "") for label in labels]
        self.side_by_side = f"{namespace}/side_by_side" if len(labels) > 1 else None
        for prefix in self.namespaces:
            for name, msgtype in OUTPUT_TYPES.items():
                if use_depth or name not in OUTPUTS_3D:
                    writer.add_topic(f"{prefix}/{name}", msgtype, store)
        if self.side_by_side:
            writer.add_topic(self.side_by_side, OUTPUT_TYPES["overlay"], store)

    def record(self, outputs: list[list[Output]]) -> None:
        """outputs[i]: model i's outputs of one drain. Each at its image's recorded time."""
        rows: dict[int, list[Output | None]] = {}  # per frame, each model's output
        for position, (prefix, model_outputs) in enumerate(zip(self.namespaces, outputs, strict=True)):
            for output in model_outputs:
                for name, msg in output.messages(self.types).items():
                    self.writer.write(f"{prefix}/{name}", output.frame.msg.log_time, msg)
                rows.setdefault(id(output.frame.msg), [None] * len(outputs))[position] = output
        for row in rows.values():
            frame = next(output for output in row if output is not None).frame.msg
            overlays = [output.images["overlay"] if output is not None else None for output in row]
            image = overlays[0]
            if self.side_by_side:
                image = side_by_side(overlays, self.labels)
                self.writer.write(self.side_by_side, frame.log_time,
                                  conversions.array_to_image(image, "bgr8", frame.header, self.types))
            if self.video is not None:
                self.video.add(image)


class Replay:
    """One run (`run`): the bag's images and prompts into each model's core, the outputs into the output bag."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.parameters = node_parameters(args)
        self.schedule = PromptSchedule(read_prompt_file(args.prompts)) if args.prompts else None

    @staticmethod
    def log(line: str) -> None:
        tqdm.write(line, file=sys.stderr)

    def run(self) -> Summary:
        args, summary = self.args, Summary()
        with BagReader(args.bag) as bag:
            images = bag.connections(args.image_topic, IMAGE_TYPES)
            prompts = self._prompt_connections(bag)
            depth = [*bag.connections(args.depth_topic, (DEPTH_TYPE,)),
                     *bag.connections(args.camera_info_topic, (CAMERA_INFO_TYPE,))] if args.depth_topic else []
            total = bag.topics()[args.image_topic][1]
            self._check_schedule(total)
            lanes = self._lanes(DECODERS[images[0].msgtype])
            out_path = args.out or default_out(args.bag)
            writer = BagWriter(out_path, args.storage, args.compress)  # nothing is written if this fails
            try:
                with writer, ExitStack() as stack:
                    writer.add_topic(args.image_topic, images[0].msgtype, bag.typestore)
                    if prompts:
                        writer.add_topic(args.prompt_topic, PROMPT_TYPE, bag.typestore)
                    video = None if args.no_video else OverlayVideo(writer.folder / VIDEO_NAME, self._fps(bag, total))
                    if video is not None:
                        stack.callback(video.close)  # before the writer moves its folder
                    recorder = Recorder(writer, [lane.label for lane in lanes], args.namespace, video, bool(depth))
                    stop = stack.enter_context(stop_requests())
                    progress = stack.enter_context(tqdm(total=total, unit="frame", desc=Path(args.bag).name,
                                                        dynamic_ncols=True, disable=args.quiet))
                    start = time.perf_counter()
                    for record in bag.records(images + prompts + depth):
                        topic = record.connection.topic
                        if topic == args.image_topic:
                            summary.segmented += self._drain(lanes, recorder)  # the previous image's jobs
                            writer.write(args.image_topic, record.log_time, raw=record.raw)
                            self._feed_frame(lanes, RecordedFrame(record.msg, record.log_time), summary.frames)
                            summary.frames += 1
                            progress.update()
                        elif topic == args.prompt_topic:
                            writer.write(args.prompt_topic, record.log_time, raw=record.raw)
                            for lane in lanes:
                                lane.core.on_prompt(record.msg)
                        else:  # a depth image or camera info: each core buffers it, a frame takes the nearest
                            for lane in lanes:
                                if topic == args.depth_topic:
                                    lane.core.on_depth(record.msg)
                                else:
                                    lane.core.on_camera_info(record.msg)
                        if stop["signal"] is not None:
                            summary.interrupted = True
                            break
                    summary.segmented += self._drain(lanes, recorder)
                    summary.seconds = time.perf_counter() - start
            finally:  # also after an error part-way: the frames done are in the bag
                self._report(summary, out_path)
        for item in self.schedule.pending() if self.schedule else []:
            where = f"frame {item.frame}" if item.frame is not None else f"stamp {item.stamp_ns / 1e9:.3f} s"
            self.log(f"warning: {args.prompts}: object {item.prompt.object_id!r} ({where}) never appeared: no image "
                     "there")
        return summary

    def _lanes(self, decode) -> list[Lane]:
        specs = [self.parameters]
        if self.args.compare:
            specs.append(compared_parameters(self.parameters, self.args.compare))
        labels = [model_label(spec) for spec in specs]
        if len(labels) == 2 and labels[0] == labels[1]:
            labels[1] += "_2"
        lanes = []
        for label, spec in zip(labels, specs, strict=True):
            def emit(level: str, line: str, prefix=f"{self.args.bag}: " + (f"{label}: " if len(specs) > 1 else "")):
                self.log(f"{level}: {prefix}{line}")

            lanes.append(Lane(label, spec, decode, emit))
            self.log(f"model {label}: {lanes[-1].core.predictor.model_name} on {lanes[-1].core.predictor.device}")
        return lanes

    @staticmethod
    def _drain(lanes: list[Lane], recorder: Recorder) -> int:
        """Runs every model's waiting jobs and records their outputs; how many the first model made."""
        outputs = [lane.drain() for lane in lanes]
        recorder.record(outputs)
        return len(outputs[0])

    def _feed_frame(self, lanes: list[Lane], frame: RecordedFrame, index: int) -> None:
        """The image to every core, then the prompt file's objects due on it. Objects carried by resending (persist)
        are sent again with the new ones, since a prompt replaces the persisted one; otherwise only the new ones."""
        for lane in lanes:
            lane.core.on_frame(frame)
        if self.schedule is None:
            return
        try:
            stamp_ns = conversions.stamp_to_ns(frame.header.stamp)
        except ConversionError:  # reported by the core; the objects wait for the next image
            return
        new = self.schedule.due(index, stamp_ns)
        if new:
            sent = self.schedule.delivered if self.parameters.get("persist") else {i.prompt.object_id for i in new}
            prompts = [item.prompt for item in self.schedule.objects if item.prompt.object_id in sent]
            for lane in lanes:
                lane.core.prompt(prompts, stamp_ns)

    def _prompt_connections(self, bag: BagReader) -> list:
        """The bag's prompt topic: used without a prompt file, required when named explicitly."""
        if self.args.prompts:
            return []
        if self.args.prompt_topic_given or self.args.prompt_topic in bag.topics():
            return bag.connections(self.args.prompt_topic, (PROMPT_TYPE,))
        raise ReplayError(f"{self.args.bag}: no prompts: the bag has no {self.args.prompt_topic} (topics: "
                          f"{', '.join(sorted(bag.topics()))}); give a prompt file (--prompts) or the recorded "
                          "prompt topic (--prompt-topic)")

    def _check_schedule(self, total: int) -> None:
        for item in self.schedule.objects if self.schedule else []:
            if item.frame is not None and item.frame >= total:
                raise ReplayError(f"{self.args.prompts}: object {item.prompt.object_id!r}: frame {item.frame}, but "
                                  f"{self.args.image_topic} has {total} images (0 to {total - 1})")

    @staticmethod
    def _fps(bag: BagReader, total: int) -> float:
        """The video's frame rate: the image topic's mean rate over the bag (1 to 60), 10 if unknown."""
        seconds = bag.duration_ns / 1e9
        return float(np.clip((total - 1) / seconds, 1, 60)) if total > 1 and seconds > 0 else 10.0

    def _report(self, summary: Summary, out_path: Path) -> None:
        rate = f", {summary.frames / summary.seconds:.1f} frames/s" if summary.seconds else ""
        ending = "interrupted: " if summary.interrupted else ""
        self.log(f"replay: {ending}{summary.segmented} of {summary.frames} frames segmented{rate}; wrote {out_path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gara_ros.replay", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("bag", type=Path, help="rosbag2 folder (sqlite3 or MCAP), or an .mcap or .db3 file")
    parser.add_argument("--image-topic", required=True, help="sensor_msgs/Image or CompressedImage topic")
    parser.add_argument("--prompts", type=Path, help="prompt file (YAML: per object id, frame or stamp, "
                                                     "points/labels and/or box); default: the bag's prompt topic")
    parser.add_argument("--prompt-topic", help="the bag's gara_ros/SegmentPrompt topic (default /gara/prompts)")
    parser.add_argument("--out", type=Path, help="output bag folder (must not exist; default BAG_gara beside BAG)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="output bag storage")
    parser.add_argument("--compress", action="store_true", help="zstd-compress the output's MCAP chunks: a much "
                                                                "smaller bag, more CPU time per frame")
    parser.add_argument("--mode", choices=tuple(MODES), default="persist",
                        help="how objects go on to later frames: persist (their prompts are applied again), track "
                             "(followed from their own previous masks; lost when the mask collapses) or once (only "
                             "where prompted)")
    parser.add_argument("--depth-topic", help="aligned depth image (16UC1 mm or 32FC1 m) for 3D: each object's "
                                              "centroid and extent in the results, and <namespace>/points, markers")
    parser.add_argument("--camera-info-topic", help="the depth image's sensor_msgs/CameraInfo (with --depth-topic)")
    parser.add_argument("--params", type=Path, help="the node's params file (default: gara_ros's config/gara.yaml)")
    parser.add_argument("--checkpoint", help="SAM checkpoint (default: the params file's; none = embedded tiny)")
    parser.add_argument("--adapter", help="GaRA adapter file (default: the params file's)")
    parser.add_argument("--sam-variant", dest="sam_variant", help="vit_b, vit_l or vit_h (with --checkpoint)")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the params file's)")
    parser.add_argument("--image-size", dest="image_size", type=int, help="encoder input size (0 = native)")
    parser.add_argument("--compare", metavar="none|ADAPTER", help="a second model on the same frames: the same base "
                                                                 "without adapter (none) or with this adapter file")
    parser.add_argument("--namespace", default=f"/{NODE}", help="output topics' prefix (the node's: RViz layouts fit)")
    parser.add_argument("--no-video", action="store_true", help=f"do not write OUT/{VIDEO_NAME}")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    args.prompt_topic_given = args.prompt_topic is not None
    args.prompt_topic = args.prompt_topic or "/gara/prompts"
    if args.prompts and args.prompt_topic_given:
        parser.error("give prompts either as a file (--prompts) or as the bag's topic (--prompt-topic), not both")
    if (args.depth_topic is None) != (args.camera_info_topic is None):
        parser.error("3D needs both --depth-topic and --camera-info-topic")
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    with one_line_errors(parser, also=(BagError, PromptFileError, ReplayError)):
        summary = Replay(args).run()
        if summary.interrupted:
            return 130
        return 0 if summary.segmented else 1
    return 2  # not reached: one_line_errors exits


if __name__ == "__main__":
    raise SystemExit(main())
