"""stream_to_part: what each answer to a (resumed) GET means for the `.part` file."""

from __future__ import annotations

import hashlib

import pytest

from pum.common.download import PartAnswer, StartAgain, UnexpectedAnswer, stream_to_part

WHOLE = b"0123456789" * 100


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_a_200_writes_the_whole_file_over_any_part(tmp_path):
    part = tmp_path / "f.part"
    part.write_bytes(b"stale")
    streamed = stream_to_part(part, 5, PartAnswer(200, None, str(len(WHOLE))), [WHOLE], hashlib.md5)
    assert part.read_bytes() == WHOLE
    assert streamed == (_md5(WHOLE), len(WHOLE), False)


def test_a_206_at_our_offset_is_appended_and_the_digest_covers_the_whole_file(tmp_path):
    part = tmp_path / "f.part"
    part.write_bytes(WHOLE[:300])
    answer = PartAnswer(206, f"bytes 300-999/{len(WHOLE)}", "700")
    streamed = stream_to_part(part, 300, answer, [WHOLE[300:600], WHOLE[600:]], hashlib.md5)
    assert part.read_bytes() == WHOLE
    assert streamed == (_md5(WHOLE), len(WHOLE), True)


def test_a_206_for_another_range_removes_the_part(tmp_path):
    part = tmp_path / "f.part"
    part.write_bytes(WHOLE[:300])
    with pytest.raises(StartAgain):
        stream_to_part(part, 300, PartAnswer(206, "bytes 0-999/1000", "1000"), [WHOLE], hashlib.md5)
    assert not part.exists()


def test_a_416_for_a_part_that_is_already_whole_uses_it(tmp_path):
    part = tmp_path / "f.part"
    part.write_bytes(WHOLE)
    streamed = stream_to_part(part, len(WHOLE), PartAnswer(416, f"bytes */{len(WHOLE)}"), [], hashlib.md5)
    assert streamed == (_md5(WHOLE), len(WHOLE), True)
    assert part.read_bytes() == WHOLE


def test_a_416_for_a_part_longer_than_their_file_removes_it(tmp_path):
    part = tmp_path / "f.part"
    part.write_bytes(WHOLE + b"more")
    with pytest.raises(StartAgain):
        stream_to_part(part, len(WHOLE) + 4, PartAnswer(416, f"bytes */{len(WHOLE)}"), [], hashlib.md5)
    assert not part.exists()


def test_a_short_body_keeps_what_came_for_the_resume(tmp_path):
    part = tmp_path / "f.part"
    with pytest.raises(StartAgain, match="short body: 400 of 1000"):
        stream_to_part(part, 0, PartAnswer(200, None, "1000"), [WHOLE[:400]], hashlib.md5)
    assert part.read_bytes() == WHOLE[:400]


def test_a_body_longer_than_its_content_length_is_not_kept(tmp_path):
    part = tmp_path / "f.part"
    with pytest.raises(StartAgain, match="longer than its Content-Length"):
        stream_to_part(part, 0, PartAnswer(200, None, "10"), [WHOLE], hashlib.md5)
    assert not part.exists()


def test_a_cut_connection_leaves_what_arrived_on_disk(tmp_path):
    part = tmp_path / "f.part"

    def cut():
        yield WHOLE[:100]
        raise ConnectionResetError("reset")

    with pytest.raises(ConnectionResetError):
        stream_to_part(part, 0, PartAnswer(200, None, "1000"), cut(), hashlib.md5)
    assert part.read_bytes() == WHOLE[:100]


def test_other_statuses_are_not_downloads(tmp_path):
    with pytest.raises(UnexpectedAnswer):
        stream_to_part(tmp_path / "f.part", 0, PartAnswer(204), [], hashlib.md5)
