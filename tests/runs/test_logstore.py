"""The segmented, size-capped output store: written by one process, read while growing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from runs.logstore import LogReader, LogWriter, count_lines, remove_store
from tests.runs.output_stores import output_store  # noqa: F401 - runs each test on both stores


def line(n: int, width: int = 20) -> bytes:
    return f"line {n}".ljust(width - 1, ".").encode() + b"\n"


def test_records_across_segments_read_back_in_order(tmp_path: Path):
    writer = LogWriter(tmp_path, cap_bytes=1 << 20, segment_bytes=100)
    expected = b""
    for n in range(1, 51):
        writer.write("stdout", line(n), float(n))
        expected += line(n)
    writer.close()
    reader = LogReader(tmp_path)

    assert len(reader.segments()) > 5
    assert reader.read_bytes() == (expected, len(expected))
    lines = reader.lines_after(0)
    assert [(ln.number, ln.text, ln.ts) for ln in lines] == [
        (n, line(n).decode().rstrip("\n"), float(n)) for n in range(1, 51)
    ]
    assert (writer.total_bytes, writer.total_lines, writer.truncated) == (len(expected), 50, False)
    assert reader.dropped() == (0, 0)


def test_cap_drops_oldest_segments_and_keeps_the_tail(tmp_path: Path):
    cap, segment = 1000, 200
    writer = LogWriter(tmp_path, cap_bytes=cap, segment_bytes=segment)
    for n in range(1, 501):  # 10,000 bytes, ten times the cap
        writer.write("stdout", line(n), 0.0)
        assert writer.stored_bytes <= cap + segment
    writer.close()
    reader = LogReader(tmp_path)

    on_disk = sum(p.stat().st_size for p in tmp_path.glob("seg-*.out"))
    assert on_disk == writer.stored_bytes <= cap + segment
    assert writer.truncated
    assert writer.dropped_bytes + writer.stored_bytes == writer.total_bytes == 10_000
    assert reader.dropped() == (writer.dropped_bytes, writer.dropped_lines)
    kept = reader.lines_after(0)
    assert kept[0].number == writer.dropped_lines + 1
    assert [ln.number for ln in kept] == list(range(writer.dropped_lines + 1, 501))
    assert kept[-1].text == line(500).decode().rstrip("\n")
    assert [ln.number for ln in reader.tail_lines(3)] == [498, 499, 500]


def test_a_single_record_larger_than_the_cap_is_kept_whole(tmp_path: Path):
    writer = LogWriter(tmp_path, cap_bytes=100, segment_bytes=50)
    big = b"".join(line(n) for n in range(1, 21))  # 400 bytes in one write
    writer.write("stdout", big, 0.0)
    writer.write("stdout", line(21), 0.0)
    writer.close()

    # The newest segment is never deleted, whatever its size.
    assert LogReader(tmp_path).tail_lines(1)[0].number == 21


def test_read_bytes_by_stream_resumes_from_next_offset_without_loss_or_repetition(tmp_path: Path):
    writer = LogWriter(tmp_path, cap_bytes=1 << 20, segment_bytes=64)
    reader = LogReader(tmp_path)
    sent = {"stdout": b"", "stderr": b"", "all": b""}
    got = {"stdout": b"", "stderr": b"", "all": b""}
    offsets = {"stdout": 0, "stderr": 0, "all": 0}

    def poll(stream: str) -> None:
        data, offsets[stream] = reader.read_bytes(stream=stream, offset=offsets[stream], limit=7)
        got[stream] += data

    for n in range(1, 61):
        stream = "stderr" if n % 3 == 0 else "stdout"
        data = f"{stream[3:]} {n}\n".encode()
        writer.write(stream, data, float(n))
        sent[stream] += data
        sent["all"] += data
        if n % 10 == 0:
            marker = f"=== marker {n} ===\n".encode()
            writer.write("system", marker, float(n))
            sent["all"] += marker
        for name in got:  # pollers racing the writer, a few bytes at a time
            poll(name)
    for name in got:
        while offsets[name] < len(sent[name]):
            poll(name)

    assert got == sent
    for name in got:
        assert offsets[name] == len(sent[name])
        # Polling at the end returns nothing and keeps the offset.
        assert reader.read_bytes(stream=name, offset=offsets[name]) == (b"", offsets[name])
    assert reader.read_bytes(stream="stderr", offset=4, limit=5) == (sent["stderr"][4:9], 9)


def test_read_bytes_from_a_dropped_offset_starts_at_the_first_kept_byte(tmp_path: Path):
    writer = LogWriter(tmp_path, cap_bytes=100, segment_bytes=40)
    for n in range(1, 31):
        writer.write("stdout", line(n), 0.0)
    writer.close()
    reader = LogReader(tmp_path)
    dropped, _ = reader.dropped()
    assert dropped > 0

    data, next_offset = reader.read_bytes(stream="stdout", offset=0)

    assert data == b"".join(line(n) for n in range(1, 31))[dropped:]
    assert next_offset == writer.total_bytes


def test_tail_lines_per_stream(tmp_path: Path):
    writer = LogWriter(tmp_path, cap_bytes=1 << 20, segment_bytes=64)
    for n in range(1, 21):
        writer.write("stdout", f"out {n}\n".encode(), float(n))
        writer.write("stderr", f"err {n}\n".encode(), float(n))
    writer.write("system", b"=== attempt 1 success ===\n", 99.0)
    writer.close()
    reader = LogReader(tmp_path)

    assert [ln.text for ln in reader.tail_lines(3, stream="stdout")] == ["out 18", "out 19", "out 20"]
    assert [(ln.stream, ln.text) for ln in reader.tail_lines(2, stream="stderr")] == [
        ("stderr", "err 19"),
        ("stderr", "err 20"),
    ]
    assert [(ln.number, ln.stream) for ln in reader.tail_lines(2)] == [(40, "stderr"), (41, "system")]
    assert reader.tail_lines(0) == []
    assert len(reader.tail_lines(1000, stream="stdout")) == 20


def test_lines_after_numbers_lines_across_streams(tmp_path: Path):
    writer = LogWriter(tmp_path, cap_bytes=1 << 20, segment_bytes=32)
    writer.write("stdout", b"a1\na2\n", 1.0)
    writer.write("stderr", b"b1\n", 2.0)
    writer.write("stdout", b"a3\na4\na5\n", 3.0)
    writer.write("system", b"=== s ===\n", 4.0)
    writer.write("stderr", b"b2 no newline", 5.0)  # a final piece counts as a line
    writer.write("stdout", b"a6\n", 6.0)
    writer.close()
    reader = LogReader(tmp_path)

    every = [(ln.number, ln.stream, ln.text) for ln in reader.lines_after(0)]
    assert every == [
        (1, "stdout", "a1"),
        (2, "stdout", "a2"),
        (3, "stderr", "b1"),
        (4, "stdout", "a3"),
        (5, "stdout", "a4"),
        (6, "stdout", "a5"),
        (7, "system", "=== s ==="),
        (8, "stderr", "b2 no newline"),
        (9, "stdout", "a6"),
    ]
    assert [ln.number for ln in reader.lines_after(4, limit=3)] == [5, 6, 7]
    assert reader.lines_after(9) == []
    assert writer.total_lines == 9


def test_reader_in_the_middle_of_a_write_sees_only_complete_records(tmp_path: Path):
    writer = LogWriter(tmp_path, cap_bytes=1 << 20)
    writer.write("stdout", b"one\ntwo\n", 1.0)
    writer.write("stderr", b"three\n", 2.0)
    writer.close()
    # Freeze the writer half-way through its next record: the data is written (data
    # goes first), the index row is cut inside its last number, which still leaves
    # seven fields ("... 14 1" of "... 14 10\n").
    with open(tmp_path / "seg-000000.out", "ab") as fh:
        fh.write(b"four\nfive\n")
    with open(tmp_path / "seg-000000.idx", "ab") as fh:
        fh.write(b"4 2 o 3.000000 14 10 1")
    reader = LogReader(tmp_path)

    assert [ln.text for ln in reader.lines_after(0)] == ["one", "two", "three"]
    assert reader.read_bytes() == (b"one\ntwo\nthree\n", 14)
    assert reader.read_bytes(stream="stdout") == (b"one\ntwo\n", 8)
    assert [ln.text for ln in reader.tail_lines(5)] == ["one", "two", "three"]


def test_concurrent_reader_never_sees_torn_or_repeated_lines(tmp_path: Path):
    total = 20_000
    writer = LogWriter(tmp_path, cap_bytes=1 << 30, segment_bytes=4096)
    reader = LogReader(tmp_path)

    def write() -> None:
        for n in range(1, total + 1, 4):
            writer.write("stdout", b"".join(f"{m}\n".encode() for m in range(n, n + 4)), 0.0)
        writer.close()

    thread = threading.Thread(target=write)
    thread.start()
    seen = 0
    try:
        while seen < total:
            for ln in reader.lines_after(seen, limit=997):
                assert ln.number == seen + 1 and ln.text == str(ln.number)
                seen = ln.number
    finally:
        thread.join()
    assert seen == total


def test_count_lines_counts_a_final_piece_without_newline():
    assert [count_lines(b""), count_lines(b"a\n"), count_lines(b"a\nb"), count_lines(b"\n\n")] == [0, 1, 2, 2]


def test_empty_or_missing_store_reads_as_empty(tmp_path: Path):
    reader = LogReader(tmp_path / "nowhere")
    assert reader.segments() == []
    assert reader.read_bytes(offset=5) == (b"", 5)
    assert reader.tail_lines(10) == []
    assert reader.lines_after(0) == []
    assert reader.dropped() == (0, 0)
    writer = LogWriter(tmp_path / "run", cap_bytes=1024)
    assert writer.write("stdout", b"", 0.0) is None
    writer.close()


def test_remove_store_deletes_the_directory(tmp_path: Path):
    writer = LogWriter(tmp_path / "run", cap_bytes=1024)
    writer.write("stdout", b"x\n", 0.0)
    writer.close()
    remove_store(tmp_path / "run")
    remove_store(tmp_path / "run")  # twice is fine
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("stream", ["stdout", "stderr", "system"])
def test_stream_offsets_count_only_their_own_bytes(tmp_path: Path, stream: str):
    writer = LogWriter(tmp_path, cap_bytes=1 << 20)
    writer.write("stdout", b"o" * 10 + b"\n", 0.0)
    writer.write("stderr", b"e" * 20 + b"\n", 0.0)
    writer.write("system", b"s" * 30 + b"\n", 0.0)
    rec = writer.write(stream, b"next\n", 0.0)
    writer.close()

    assert rec is not None
    assert rec.soff == {"stdout": 11, "stderr": 21, "system": 31}[stream]
    assert rec.off == 11 + 21 + 31
    assert LogReader(tmp_path).read_bytes(stream=stream, offset=rec.soff) == (b"next\n", rec.soff + 5)


def test_local_files_read_the_interfaces_contract(tmp_path: Path) -> None:
    from runs.logstore.files import LocalFiles

    (tmp_path / "seg-000001.out").write_bytes(b"0123456789")
    files = LocalFiles(tmp_path)
    assert files.read("seg-000001.out") == b"0123456789"
    assert files.read("seg-000001.out", 4) == b"456789"
    assert files.read("seg-000001.out", 4, 3) == b"456"
    assert files.read("seg-000001.out", 8, 100) == b"89"  # short at the end
    assert files.read("seg-000001.out", 10) == b"" and files.read("seg-000001.out", 50, 5) == b""
    assert files.size("seg-000001.out") == 10 and files.size("nope") is None
    assert sorted(files.names()) == ["seg-000001.out"]
    with pytest.raises(FileNotFoundError):
        files.read("seg-000002.out")
    assert LocalFiles(tmp_path / "gone").names() == []
