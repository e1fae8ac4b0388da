"""Ring buffer, latest-only slot and frame delivery."""

import threading

import pytest

from gara_ros.frames import DeliveryMonitor, Frame, FrameBuffer, LatestSlot

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


def test_slot_is_idle_only_when_nothing_waits_and_the_taken_item_is_done():
    slot = LatestSlot()
    assert slot.idle()
    slot.put("a")
    assert not slot.idle()
    assert slot.take(0) == "a" and not slot.idle()  # taken, in progress
    slot.done()
    assert slot.idle()


def test_delivery_counts_frames_missing_between_stamps():
    monitor = DeliveryMonitor(max_gap_ns=1000 * MS)
    for t in (0, 33, 66, 165, 198, 330):  # a 33 ms camera; 2 and 3 frames missing
        monitor.add(1000 * MS + t * MS)
    delivery = monitor.take()
    assert (delivery.received, delivery.expected, delivery.lost_reported) == (6, 11, 0)
    assert delivery.period_ns == 33 * MS and delivery.camera_rate_hz == pytest.approx(1000 / 33)
    assert monitor.take().expected == 0  # a new period


@pytest.mark.parametrize("stamps_ms,expected", [
    ((1000, 1033, 3033, 3066), 4),  # a paused camera (gap over max_gap) is not loss
    ((1000, 1033, 500, 533), 4),  # stamps going back (a restarted camera or bag) are not loss
    ((1000, 1000, 1000), 3),  # repeated stamps
    ((0, 0), 2),  # a camera without stamps
])
def test_delivery_gaps_that_are_not_loss(stamps_ms, expected):
    monitor = DeliveryMonitor(max_gap_ns=1000 * MS)
    for t in stamps_ms:
        monitor.add(t * MS)
    delivery = monitor.take()
    assert (delivery.received, delivery.expected) == (len(stamps_ms), expected)


def test_delivery_takes_the_larger_of_the_stamp_and_middleware_counts():
    monitor = DeliveryMonitor()
    monitor.add(1000 * MS)
    monitor.lost(599)
    assert (monitor.take().expected, monitor.take().expected) == (600, 0)
    assert DeliveryMonitor().take().period_ns is None and DeliveryMonitor().take().camera_rate_hz == 0.0
