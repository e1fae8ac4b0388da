"""Bags without ROS, on rosbags: our message types, a recorded bag read in order, the replay's output bag.

Reads rosbag2 folders (sqlite3 or MCAP storage) and single .mcap or .db3 files; writes rosbag2 folders (MCAP with
zstd chunks, or sqlite3). gara_ros's messages (msg/*.msg) are registered in the type store at run time, so neither
side needs a ROS build. A bag that records its own message definitions (MCAP; sqlite3 since Iron) is read with
those. Every problem with a bag is a BagError: one line naming the file and what was expected. No rclpy.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import Connection
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from gara_ros.conversions import MessageTypes
from gara_ros.share import share_path

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
PROMPT_TYPE = "gara_ros/msg/SegmentPrompt"
RESULT_TYPE = "gara_ros/msg/SegmentResult"
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
# Standard messages (Header, Image, CompressedImage) are the same in Humble, Jazzy and Kilted.
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
    types = store.types
    header, time = types["std_msgs/msg/Header"], types["builtin_interfaces/msg/Time"]
    return MessageTypes(header=lambda: header(stamp=time(sec=0, nanosec=0), frame_id=""),
                        image=types["sensor_msgs/msg/Image"], segment_result=types[RESULT_TYPE],
                        object_result=types["gara_ros/msg/ObjectResult"])


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

    `folder` is where the bag's files are until closed (the replay puts its video there too).
    """

    def __init__(self, path: str | os.PathLike, storage: str = "mcap"):
        self.path = Path(path)
        self.staging = self.path.with_name(self.path.name + ".partial")
        if self.path.exists():
            raise BagError(f"{self.path} exists; give another output or remove it (nothing is overwritten)")
        if self.staging.exists():
            raise BagError(f"{self.staging} is left from a run that was killed before it could close its output; "
                           "remove it")
        self.folder = self.staging / self.path.name
        self._writer = Writer(self.folder, version=WRITER_VERSION, storage_plugin=STORAGES[storage])
        if storage == "mcap":
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        try:
            self.staging.mkdir(parents=True)
            self._writer.open()
        except (OSError, WriterError) as error:
            raise BagError(f"{self.path}: cannot write the bag: {error}") from None
        self._connections: dict[str, tuple[Connection, Typestore]] = {}

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add_topic(self, topic: str, msgtype: str, store: Typestore) -> None:
        """A topic of `msgtype`, serialized with `store`'s definition of it."""
        self._connections[topic] = (self._writer.add_connection(topic, msgtype, typestore=store), store)

    def write(self, topic: str, log_time: int, msg: Any = None, raw: bytes | None = None) -> None:
        """A message (serialized here) or its CDR bytes `raw`, recorded at `log_time` (ns)."""
        connection, store = self._connections[topic]
        self._writer.write(connection, log_time, raw if raw is not None else
                           store.serialize_cdr(msg, connection.msgtype))

    def close(self) -> None:
        """Writes the index and metadata.yaml and moves the bag to `path`."""
        self._writer.close()
        self.folder.replace(self.path)
        self.staging.rmdir()
