"""Bags without ROS, on rosbags: our message types, a recorded bag read in order, the replay's output bag.

Reads rosbag2 folders (sqlite3 or MCAP storage) and single .mcap or .db3 files; writes rosbag2 folders (MCAP, its
chunks uncompressed as `ros2 bag record` writes them or zstd-compressed, or sqlite3). gara_ros's messages
(msg/*.msg) are registered in the type store at run time, so neither side needs a ROS build. A bag that records
its own message definitions (MCAP; sqlite3 since Iron) is read with those. Every problem with a bag is a BagError:
one line naming the file and what was expected. No rclpy.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import Connection, Nodetype
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from gara_ros.conversions import MESSAGE_TYPES, MessageTypes
from gara_ros.share import share_path

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
PROMPT_TYPE = "gara_ros/msg/SegmentPrompt"
DEPTH_TYPE, CAMERA_INFO_TYPE = "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo"
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
# Standard messages (Header, Image, CompressedImage, CameraInfo, PointCloud2, Marker) are the same in Humble, Jazzy
# and Kilted.
BASE_STORE = Stores.ROS2_KILTED
# rosbag2 metadata version 8: its QoS field is the string that Humble's `ros2 bag` still reads (9 changed it).
WRITER_VERSION = 8


class BagError(Exception):
    """A bag that cannot be read or written as asked; the message is one line naming the file."""


@functools.cache
def typestore() -> Typestore:
    """ROS 2's standard messages and gara_ros's own, registered from msg/*.msg."""
    store = get_typestore(BASE_STORE)
    folder = share_path("msg")
    types = {}
    for path in sorted(folder.glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"gara_ros/msg/{path.stem}"))
    if PROMPT_TYPE not in types:
        raise FileNotFoundError(f"no SegmentPrompt.msg in {folder}")
    store.register(types)
    return store


def message_types(store: Typestore) -> MessageTypes:
    """The store's classes for building the outputs (conversions.MessageTypes)."""
    return MessageTypes(**{name: StoreConstructor(store, msgtype) for name, msgtype in MESSAGE_TYPES.items()})


class StoreConstructor:
    """A message type of a rosbags type store, built as ROS 2's generated classes are: from any of its fields as
    keywords, the others zero or empty (rosbags' classes need every field; an unknown field is a TypeError), with the
    type's constants as attributes (`Marker.CUBE`). A default value that a .msg file sets (geometry_msgs/Quaternion's
    w = 1) is not in the store: the builders in gara_ros.conversions give such fields."""

    def __init__(self, store: Typestore, msgtype: str):
        self.store, self.msgtype, self.cls = store, msgtype, store.types[msgtype]
        constants, self.fields = store.fielddefs[msgtype]
        for name, _, value in constants:
            setattr(self, name, value)

    def __call__(self, **fields: Any) -> Any:
        missing = {name: _zero(self.store, desc) for name, desc in self.fields if name not in fields}
        return self.cls(**missing, **fields)


def _zero(store: Typestore, desc: tuple) -> Any:
    """The default value of a field of description `desc` (rosbags' fielddefs): 0, False, "", zeroed arrays, empty
    sequences, messages of such values."""
    kind, detail = desc
    if kind == Nodetype.NAME:
        return StoreConstructor(store, detail)()
    if kind == Nodetype.BASE:
        return {"string": "", "bool": False, "float32": 0.0, "float64": 0.0}.get(detail[0], 0)
    element, length = detail
    if element[0] == Nodetype.BASE and element[1][0] != "string":
        dtype = np.uint8 if element[1][0] in ("byte", "char") else np.dtype(element[1][0])
        return np.zeros(length if kind == Nodetype.ARRAY else 0, dtype)
    return [_zero(store, element) for _ in range(length)] if kind == Nodetype.ARRAY else []


@dataclass(frozen=True)
class Record:
    """One message of a bag: its connection (topic, type), the time it was recorded (ns), its CDR bytes, and the
    message itself."""

    connection: Connection
    log_time: int
    raw: bytes
    msg: Any


class BagReader:
    """A recorded bag, open for reading (a context manager): its topics and their messages in recorded order,
    streamed (one storage chunk in memory at a time)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.suffix == ".bag":
            raise BagError(f"{self.path}: a ROS 1 bag; convert it to rosbag2 first "
                           f"(rosbags-convert --src {self.path} --dst {self.path.with_suffix('')})")
        if self.path.is_dir() and not (self.path / "metadata.yaml").exists():
            storage = sorted([*self.path.glob("*.mcap"), *self.path.glob("*.db3")])
            hint = f": give its storage file instead ({storage[0]})" if len(storage) == 1 else ""
            raise BagError(f"{self.path}: no metadata.yaml, so not a rosbag2 folder (a recording that was not "
                           f"closed?){hint}")
        try:
            self._reader = AnyReader([self.path], default_typestore=typestore())
            self._reader.open()
        except FileNotFoundError:
            raise BagError(f"{self.path}: no such bag (expected a rosbag2 folder, an .mcap or a .db3 file)") from None
        except AnyReaderError as error:
            raise BagError(f"{self.path}: cannot read the bag: {error}") from None
        except Exception as error:  # noqa: BLE001  what a corrupt index makes the storage reader raise (a length
            # field of petabytes: MemoryError)
            raise BagError(f"{self.path}: cannot read the bag: {type(error).__name__}: {error}") from None

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc) -> None:
        self._reader.close()

    @property
    def typestore(self) -> Typestore:
        """The types the bag is read with (its own definitions where it records them)."""
        return self._reader.typestore

    @property
    def duration_ns(self) -> int:
        """From the first recorded message to the last."""
        return self._reader.duration

    def topics(self) -> dict[str, tuple[str, int]]:
        """topic -> (message type, message count)."""
        return {name: (info.msgtype, info.msgcount) for name, info in self._reader.topics.items()}

    def connections(self, topic: str, types: tuple[str, ...]) -> list[Connection]:
        """The connections of `topic`, which must exist with one of `types`."""
        topics = self.topics()
        if topic not in topics:
            listed = ", ".join(f"{name} ({msgtype})" for name, (msgtype, _) in sorted(topics.items())) or "none"
            raise BagError(f"{self.path}: no topic {topic}; the bag has: {listed}")
        msgtype = topics[topic][0]
        if msgtype not in types:
            raise BagError(f"{self.path}: topic {topic} is {msgtype}; expected {' or '.join(types)}")
        return [c for c in self._reader.connections if c.topic == topic]

    def records(self, connections: list[Connection]) -> Iterator[Record]:
        """The messages of `connections` in the order they were recorded, deserialized. A bag that turns out
        unreadable part-way (corrupt or cut-off data) raises BagError there."""
        messages = self._reader.messages(connections=connections)
        while True:
            try:
                connection, log_time, raw = next(messages)
                msg = self._reader.deserialize(raw, connection.msgtype)
            except StopIteration:
                return
            except Exception as error:  # noqa: BLE001  whatever the storage, decompressor or decoder raised
                raise BagError(f"{self.path}: unreadable data part-way through the bag: "
                               f"{type(error).__name__}: {error}") from None
            yield Record(connection, log_time, raw, msg)


class BagWriter:
    """A new rosbag2 folder at `path` (a context manager). An interrupted run leaves a readable bag of what was
    written, or none: the bag is written into `<path>.partial/`, closed (index and metadata.yaml) at the end, on an
    error or on Ctrl-C, and only then moved to `path`. A run killed outright leaves only `<path>.partial/`, which
    the next run refuses to overwrite.

    A thread of its own opens, serializes into, compresses and closes the bag (sqlite3 wants one thread), so that
    this work overlaps the next frame's; at most `queue_size` messages wait. `folder` is where the bag's files are
    until closed (the replay puts its video there too).
    """

    def __init__(self, path: str | os.PathLike, storage: str = "mcap", compress: bool = False, queue_size: int = 16):
        self.path = Path(path)
        self.staging = self.path.with_name(self.path.name + ".partial")
        if self.path.exists():
            raise BagError(f"{self.path} exists; give another output or remove it (nothing is overwritten)")
        if self.staging.exists():
            raise BagError(f"{self.staging} is left from a run that was killed before it could close its output; "
                           "remove it")
        if compress and storage != "mcap":
            raise BagError(f"{self.path}: compression is for MCAP storage only")
        self.folder = self.staging / self.path.name
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._error: Exception | None = None
        opened: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, args=(storage, compress, opened), name="bag_writer",
                                        daemon=True)
        self._thread.start()
        if (error := opened.get()) is not None:
            self._thread.join()
            raise BagError(f"{self.path}: cannot write the bag: {error}")

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add_topic(self, topic: str, msgtype: str, store: Typestore) -> None:
        """A topic of `msgtype`, serialized with `store`'s definition of it."""
        self._put(("topic", topic, msgtype, store))

    def write(self, topic: str, log_time: int, msg: Any = None, raw: bytes | None = None) -> None:
        """Queues a message (to be serialized; it must not change afterwards) or its CDR bytes `raw`, recorded at
        `log_time` (ns)."""
        self._put(("message", topic, log_time, msg, raw))

    def close(self) -> None:
        """Writes what is queued, the index and metadata.yaml, and moves the bag to `path`."""
        self._queue.put(None)
        self._thread.join()
        self.folder.replace(self.path)
        self.staging.rmdir()
        self._raise_error()

    def _put(self, item: tuple) -> None:
        self._raise_error()
        self._queue.put(item)

    def _work(self, storage: str, compress: bool, opened: queue.Queue) -> None:
        writer = Writer(self.folder, version=WRITER_VERSION, storage_plugin=STORAGES[storage])
        if compress:  # zstd chunks: masks and labels shrink tenfold and more; costs CPU time per frame
            writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        try:
            self.staging.mkdir(parents=True)
            writer.open()
        except (OSError, WriterError) as error:
            opened.put(error)
            return
        opened.put(None)
        connections: dict[str, tuple[Connection, Typestore]] = {}
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue
            try:
                if item[0] == "topic":
                    _, topic, msgtype, store = item
                    connections[topic] = (writer.add_connection(topic, msgtype, typestore=store), store)
                else:
                    _, topic, log_time, msg, raw = item
                    connection, store = connections[topic]
                    writer.write(connection, log_time, raw if raw is not None else
                                 store.serialize_cdr(msg, connection.msgtype))
            except Exception as error:  # noqa: BLE001  reported by the next write or close
                self._error = error
        try:
            writer.close()
        except Exception as error:  # noqa: BLE001  reported by close
            self._error = self._error or error

    def _raise_error(self) -> None:
        if self._error is not None:
            raise BagError(f"{self.path}: cannot write the bag: {type(self._error).__name__}: {self._error}")
