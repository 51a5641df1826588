"""Following a run's output store while it grows (LogFollower), and the log viewer's
paged and searched reads (LogReader.page, LogReader.search).

The follower is what every live view (websocket, SSE) reads through: resuming from
any line must be exact, polling must be incremental, it must cross segments, survive
the cap deleting segments under it (and say how many lines it never saw), and a
``limit`` that falls inside a record must neither lose nor repeat a line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runs.logstore import Line, LogFollower, LogReader, LogWriter
from tests.runs.output_stores import output_store  # noqa: F401 - runs each test on both stores

TS = 1_700_000_000.0


def write(writer: LogWriter, first: int, count: int, *, stream: str = "stdout", width: int = 0) -> None:
    """One record holding lines ``L<first>`` .. ``L<first+count-1>`` (padded to ``width``)."""
    body = "".join(f"L{n}".ljust(width) + "\n" for n in range(first, first + count))
    writer.write(stream, body.encode(), TS + first)


def numbers(lines: list[Line]) -> list[int]:
    return [line.number for line in lines]


def drain(follower: LogFollower, *, limit: int = 5000) -> list[Line]:
    out: list[Line] = []
    while batch := follower.poll(limit=limit):
        assert len(batch) <= limit
        out.extend(batch)
    return out


def check_text(lines: list[Line]) -> None:
    for line in lines:
        assert line.text.rstrip() == f"L{line.number}", line


# -- incremental polling ------------------------------------------------------------------


def test_poll_returns_only_new_lines(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, cap_bytes=1 << 20)
    follower = LogFollower(tmp_path)
    assert follower.poll() == []
    write(writer, 1, 3)
    got = follower.poll()
    assert numbers(got) == [1, 2, 3]
    assert [ln.stream for ln in got] == ["stdout"] * 3
    assert got[0].ts == pytest.approx(TS + 1)
    check_text(got)
    assert follower.poll() == []
    write(writer, 4, 1, stream="stderr")
    write(writer, 5, 2)
    got = follower.poll()
    assert [(ln.number, ln.stream) for ln in got] == [(4, "stderr"), (5, "stdout"), (6, "stdout")]
    assert follower.after == 6 and follower.skipped == 0


def test_following_a_store_that_does_not_exist_yet(tmp_path: Path) -> None:
    store = tmp_path / "later"
    follower = LogFollower(store)
    assert not follower.changed()
    assert follower.poll() == []
    writer = LogWriter(store, cap_bytes=1 << 20)
    assert follower.poll() == []  # created, still empty
    write(writer, 1, 2)
    assert follower.changed()
    assert numbers(follower.poll()) == [1, 2]


def test_changed_is_a_cheap_and_truthful_hint(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, cap_bytes=1 << 20, segment_bytes=64)
    follower = LogFollower(tmp_path)
    write(writer, 1, 2)
    assert follower.changed()
    follower.poll()
    assert not follower.changed()
    write(writer, 3, 1)
    assert follower.changed()
    follower.poll()
    assert not follower.changed()
    write(writer, 4, 40)  # fills the segment: the next write opens another
    write(writer, 44, 1)
    assert follower.changed()
    assert numbers(drain(follower)) == list(range(4, 45))
    assert not follower.changed()


def test_a_final_piece_without_newline_is_a_line(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, cap_bytes=1 << 20)
    writer.write("stdout", b"one\ntwo", TS)
    writer.write("stderr", b"three\n", TS)
    got = LogFollower(tmp_path).poll()
    assert [(ln.number, ln.text) for ln in got] == [(1, "one"), (2, "two"), (3, "three")]


def test_polling_crosses_many_segments_without_gaps(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, cap_bytes=1 << 30, segment_bytes=200)
    follower = LogFollower(tmp_path)
    seen: list[Line] = []
    n = 1
    for round_ in range(30):
        count = 1 + round_ % 7
        write(writer, n, count, stream="stderr" if round_ % 5 == 0 else "stdout", width=30)
        n += count
        if round_ % 3 == 0:
            seen += drain(follower, limit=4)
    seen += drain(follower, limit=4)
    assert len(LogReader(tmp_path).segments()) > 5
    assert numbers(seen) == list(range(1, n))
    check_text(seen)


def test_a_row_written_just_before_the_writer_moves_on_is_not_missed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race at a segment boundary: the follower has read segment 0 to its end; the
    # writer appends one more row to segment 0 and opens segment 1; the follower then
    # sees segment 1 and moves on. It must not leave that last row of segment 0 behind.
    writer = LogWriter(tmp_path, cap_bytes=1 << 30, segment_bytes=100)
    write(writer, 1, 2)
    follower = LogFollower(tmp_path)
    assert numbers(follower.poll()) == [1, 2]
    files = follower.reader.files
    real_size = files.size
    fired = []

    def size(name: str) -> int | None:
        if name == "seg-000001.idx" and not fired:
            fired.append(True)
            write(writer, 3, 20)  # still segment 0, now past segment_bytes
            write(writer, 23, 1)  # opens segment 1
        return real_size(name)

    monkeypatch.setattr(files, "size", size)
    got = drain(follower)
    assert fired
    assert numbers(got) == list(range(3, 24))


# -- resuming --------------------------------------------------------------------------


@pytest.mark.parametrize("segment_bytes", [64, 1 << 20])
def test_resuming_from_any_line_is_exact(tmp_path: Path, segment_bytes: int) -> None:
    writer = LogWriter(tmp_path, cap_bytes=1 << 30, segment_bytes=segment_bytes)
    n = 1
    for count in (3, 1, 5, 2, 8, 1, 1, 4):
        write(writer, n, count, stream="stderr" if count == 1 else "stdout")
        n += count
    total = n - 1
    for after in range(total + 2):
        got = drain(LogFollower(tmp_path, after=after), limit=3)
        assert numbers(got) == list(range(after + 1, total + 1)), after
        check_text(got)


def test_resuming_then_following(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, cap_bytes=1 << 20, segment_bytes=64)
    write(writer, 1, 10)
    follower = LogFollower(tmp_path, after=7)
    assert numbers(follower.poll()) == [8, 9, 10]
    write(writer, 11, 3)
    assert numbers(follower.poll()) == [11, 12, 13]


# -- limits ------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 10, 11, 1000])
def test_a_limit_inside_a_record_loses_and_repeats_nothing(tmp_path: Path, limit: int) -> None:
    writer = LogWriter(tmp_path, cap_bytes=1 << 30, segment_bytes=120)
    write(writer, 1, 10)
    write(writer, 11, 1, stream="stderr")
    write(writer, 12, 25)
    follower = LogFollower(tmp_path)
    batches = []
    while batch := follower.poll(limit=limit):
        assert len(batch) <= limit
        batches.append(batch)
    every = [ln for batch in batches for ln in batch]
    assert numbers(every) == list(range(1, 37))
    check_text(every)
    assert all(len(b) == limit for b in batches[:-1])
    assert follower.after == 36


def test_a_limit_inside_a_record_while_a_row_is_half_written(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if request.getfixturevalue("output_store") == "database":
        pytest.skip("local files only: the database commits whole batches, a row is never half there")
    writer = LogWriter(tmp_path, cap_bytes=1 << 20)
    write(writer, 1, 6)
    # The writer is in the middle of appending the next record: its data is there, its
    # index row only partly.
    data = b"L7\nL8\n"
    row = f"7 2 o {TS:.6f} {writer.total_bytes} {len(data)} {writer.total_bytes}\n".encode()
    out = tmp_path / "seg-000000.out"
    idx = tmp_path / "seg-000000.idx"
    with open(out, "ab") as fh:
        fh.write(data)
    with open(idx, "ab") as fh:
        fh.write(row[:9])
    follower = LogFollower(tmp_path)
    assert numbers(follower.poll(limit=4)) == [1, 2, 3, 4]
    assert numbers(follower.poll(limit=4)) == [5, 6]
    with open(idx, "ab") as fh:
        fh.write(row[9:])
    assert numbers(follower.poll(limit=4)) == [7, 8]
    assert follower.poll(limit=4) == []


def test_a_huge_record_is_served_in_bounded_batches(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, cap_bytes=1 << 30)
    write(writer, 1, 100_000)  # one pipe read of 100,000 short lines
    follower = LogFollower(tmp_path)
    sizes = []
    last = 0
    while batch := follower.poll(limit=2000):
        sizes.append(len(batch))
        assert batch[0].number == last + 1
        last = batch[-1].number
    assert last == 100_000
    assert max(sizes) == 2000


# -- the cap dropping segments under a follower ------------------------------------------------


def test_cap_drops_while_following_are_counted_as_skipped(tmp_path: Path) -> None:
    # 100-byte lines, 1 KiB segments, a 3 KiB cap: the store keeps about 30 lines.
    writer = LogWriter(tmp_path, cap_bytes=3000, segment_bytes=1000)
    follower = LogFollower(tmp_path)
    write(writer, 1, 5, width=99)
    assert numbers(follower.poll()) == [1, 2, 3, 4, 5]
    n = 6
    for _ in range(20):  # 200 lines while the follower looks away
        write(writer, n, 10, width=99)
        n += 10
    first_kept = LogReader(tmp_path).first_record()
    assert first_kept is not None and first_kept.line > 6
    got = drain(follower)
    assert numbers(got) == list(range(first_kept.line, n))
    check_text(got)
    assert follower.skipped == first_kept.line - 6
    # Lines seen + lines skipped account for every line written.
    assert 5 + follower.skipped + len(got) == n - 1


def test_cap_drops_inside_the_segment_being_read(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, cap_bytes=3000, segment_bytes=1000)
    for i in range(0, 30, 3):
        write(writer, i + 1, 3, width=99)
    follower = LogFollower(tmp_path)
    got = follower.poll(limit=4)  # stops in the middle of a segment (and of a record)
    n = 31
    for _ in range(10):
        write(writer, n, 10, width=99)
        n += 10
    got += drain(follower, limit=4)
    nums = numbers(got)
    assert nums == sorted(set(nums)), "repeated or out of order"
    assert nums[-1] == n - 1
    assert len(nums) + follower.skipped == n - 1
    check_text(got)


def test_resuming_from_a_dropped_line_skips_to_the_first_kept(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, cap_bytes=2000, segment_bytes=1000)
    for i in range(1, 101, 10):
        write(writer, i, 10, width=49)
    first = LogReader(tmp_path).first_record()
    assert first is not None and first.line > 10
    follower = LogFollower(tmp_path, after=3)
    got = drain(follower)
    assert numbers(got) == list(range(first.line, 101))
    assert follower.skipped == first.line - 4


def test_lines_whose_data_vanished_are_skipped_not_invented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cap can delete a segment's data between the follower reading its index and
    # reading its bytes. Those lines were dropped: never deliver them as empty lines.
    writer = LogWriter(tmp_path, cap_bytes=1 << 20)
    write(writer, 1, 4)
    follower = LogFollower(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(LogReader, "read_record", lambda self, rec: b"")
        assert follower.poll() == []
        assert follower.skipped == 4 and follower.after == 4
    write(writer, 5, 1)
    assert numbers(follower.poll()) == [5]


# -- LogReader.page -----------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> LogReader:
    """40 lines over several segments: 1-10 stdout, 11-12 stderr, 13-40 stdout."""
    writer = LogWriter(tmp_path, cap_bytes=1 << 30, segment_bytes=100)
    write(writer, 1, 10, width=20)
    write(writer, 11, 2, stream="stderr", width=20)
    for i in range(13, 41, 4):
        write(writer, i, 4, width=20)
    writer.close()
    assert len(LogReader(tmp_path).segments()) > 3
    return LogReader(tmp_path)


def test_page_defaults_to_the_newest_lines_oldest_first(store: LogReader) -> None:
    assert numbers(store.page(limit=5)) == [36, 37, 38, 39, 40]
    assert numbers(store.page(limit=100)) == list(range(1, 41))
    check_text(store.page(limit=100))


@pytest.mark.parametrize("before", [2, 5, 11, 12, 13, 14, 30, 41])
@pytest.mark.parametrize("limit", [1, 3, 8])
def test_page_before_a_line(store: LogReader, before: int, limit: int) -> None:
    expected = list(range(max(1, before - limit), before))
    assert numbers(store.page(before=before, limit=limit)) == expected


def test_paging_backwards_visits_every_line_once(store: LogReader) -> None:
    seen: list[int] = []
    before = None
    while page := store.page(before=before, limit=7):
        seen[:0] = numbers(page)
        before = page[0].number
    assert seen == list(range(1, 41))


def test_page_by_stream(store: LogReader) -> None:
    assert numbers(store.page(limit=100, stream="stderr")) == [11, 12]
    assert [ln.stream for ln in store.page(limit=100, stream="stderr")] == ["stderr", "stderr"]
    assert numbers(store.page(limit=3, stream="stdout", before=13)) == [8, 9, 10]


def test_page_of_an_empty_store(tmp_path: Path) -> None:
    assert LogReader(tmp_path / "none").page() == []
    assert LogReader(tmp_path / "none").search("x") == ([], False)


# -- LogReader.search ---------------------------------------------------------------------


def test_search_is_case_insensitive_and_ordered(store: LogReader) -> None:
    hits, more = store.search("l1")
    assert numbers(hits) == [1, *range(10, 20)]
    assert not more
    hits_upper, _ = store.search("L1")
    assert numbers(hits_upper) == numbers(hits)


def test_search_limit_after_and_has_more(store: LogReader) -> None:
    hits, more = store.search("l", limit=5)
    assert numbers(hits) == [1, 2, 3, 4, 5] and more
    hits, more = store.search("l", limit=5, after=hits[-1].number)
    assert numbers(hits) == [6, 7, 8, 9, 10] and more
    hits, more = store.search("l", limit=5, after=36)
    assert numbers(hits) == [37, 38, 39, 40] and not more
    hits, more = store.search("l", limit=4, after=36)
    assert numbers(hits) == [37, 38, 39, 40] and not more


def test_search_inside_a_record_after_a_line(store: LogReader) -> None:
    hits, _ = store.search("l", after=2, limit=2)
    assert numbers(hits) == [3, 4]


def test_search_by_stream_and_no_match(store: LogReader) -> None:
    hits, _ = store.search("L1", stream="stderr")
    assert numbers(hits) == [11, 12]
    assert store.search("nothing like it") == ([], False)


# -- chunks (the log_batch form) ----------------------------------------------------------


def chunk_lines(follower: LogFollower, *, max_bytes: int = 1 << 20) -> list[tuple[int, str, str]]:
    out: list[tuple[int, str, str]] = []
    while chunks := follower.poll_chunks(max_bytes=max_bytes):
        for chunk in chunks:
            parts = chunk.text.split("\n")
            assert len(parts) == chunk.count
            out += [(chunk.first + i, chunk.stream, text) for i, text in enumerate(parts)]
    return out


def test_chunks_give_the_same_lines_as_poll(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, cap_bytes=1 << 20)
    write(writer, 1, 3)
    writer.write("stderr", b"\nempty before me\n", TS)  # an empty line, then one more
    writer.write("stdout", b"partial, no newline", TS)
    writer.close()
    by_line = [(ln.number, ln.stream, ln.text) for ln in drain(LogFollower(tmp_path))]
    assert chunk_lines(LogFollower(tmp_path)) == by_line
    assert by_line[3:] == [
        (4, "stderr", ""),
        (5, "stderr", "empty before me"),
        (6, "stdout", "partial, no newline"),
    ]


@pytest.mark.parametrize("after", [0, 1, 2, 5, 6, 7, 12])
def test_chunks_resume_exactly_inside_a_record(tmp_path: Path, after: int) -> None:
    writer = LogWriter(tmp_path, cap_bytes=1 << 20)
    write(writer, 1, 6)
    write(writer, 7, 6, stream="stderr")
    follower = LogFollower(tmp_path, after=after)
    got = chunk_lines(follower, max_bytes=1)  # one record per call
    assert [n for n, _, _ in got] == list(range(after + 1, 13))
    assert all(text == f"L{n}" for n, _, text in got)
    assert follower.after == 12


def test_chunks_follow_a_growing_store_and_mix_with_poll(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, cap_bytes=1 << 20)
    follower = LogFollower(tmp_path)
    assert follower.poll_chunks() == []
    write(writer, 1, 4)
    assert numbers(follower.poll(limit=2)) == [1, 2]  # stops inside the record
    assert [(n, text) for n, _, text in chunk_lines(follower)] == [(3, "L3"), (4, "L4")]
    write(writer, 5, 2)
    assert [n for n, _, _ in chunk_lines(follower)] == [5, 6]


def test_a_big_record_is_cut_at_whole_lines_to_fit(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, cap_bytes=1 << 20)
    write(writer, 1, 100, width=9)  # one record of 100 lines of 10 bytes
    follower = LogFollower(tmp_path)
    sizes = []
    got: list[int] = []
    while chunks := follower.poll_chunks(max_bytes=95):
        sizes.append(sum(len(c.text) + 1 for c in chunks))
        for chunk in chunks:
            got += range(chunk.first, chunk.first + chunk.count)
            texts = chunk.text.split("\n")
            assert [t.rstrip() for t in texts] == [
                f"L{n}" for n in range(chunk.first, chunk.first + len(texts))
            ]
    assert got == list(range(1, 101))
    assert max(sizes) <= 95  # 9 whole lines a call
