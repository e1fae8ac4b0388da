"""Ring buffer and latest-only slot."""

import threading

import pytest

from gara_ros.frames import Frame, FrameBuffer, LatestSlot

MS = 1_000_000


def buffer_with(*stamps_ms, size=3):
    frames = FrameBuffer(size)
    for t in stamps_ms:
        frames.add(Frame(msg=f"image@{t}", stamp_ns=t * MS))
    return frames


def test_find_exact_nearest_latest_and_missing():
    frames = buffer_with(100, 200, 300)
    assert frames.find(200 * MS, 0).msg == "image@200"
    assert frames.find(215 * MS, 20 * MS).msg == "image@200"
    assert frames.find(260 * MS, 50 * MS).msg == "image@300"
    assert frames.find(250 * MS, 20 * MS) is None
    assert frames.find(0, 0).msg == frames.latest().msg == "image@300"


def test_oldest_frames_fall_out_and_empty_buffer():
    frames = buffer_with(100, 200, 300, 400)
    assert frames.find(100 * MS, 10 * MS) is None and frames.find(200 * MS, 0).msg == "image@200"
    assert FrameBuffer(2).find(0, 0) is None and FrameBuffer(2).latest() is None
    with pytest.raises(ValueError, match="size"):
        FrameBuffer(0)


def test_slot_keeps_only_the_newest_item():
    slot = LatestSlot()
    for item in "abc":
        slot.put(item)
    assert slot.take(0) == "c" and slot.dropped == 2
    assert slot.take(0.01) is None
    slot.put("d")
    slot.clear()
    assert slot.take(0.01) is None and slot.dropped == 2


def test_take_waits_for_put_from_another_thread():
    slot = LatestSlot()
    threading.Timer(0.05, slot.put, args=("late",)).start()
    assert slot.take(2.0) == "late"
