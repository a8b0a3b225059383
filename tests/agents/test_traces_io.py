"""Trace files: one JSONL file, or a folder of them read in name order."""

from __future__ import annotations

import pytest
from agent_helpers import make_episodes

from agents.traces import read_episodes, write_episodes
from simpersona_env.errors import DataError


def test_read_a_folder_of_trace_files_in_name_order(tmp_path):
    eps = make_episodes(9)
    write_episodes(eps[4:], tmp_path / "b-demos.jsonl")
    write_episodes(eps[:4], tmp_path / "a-traces.jsonl")
    (tmp_path / "notes.txt").write_text("not a trace file")
    assert read_episodes(tmp_path) == eps
    assert read_episodes(tmp_path / "a-traces.jsonl") == eps[:4]


def test_trace_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(DataError, match="no .jsonl trace file"):
        read_episodes(tmp_path)
    with pytest.raises(DataError, match="no trace file"):
        read_episodes(tmp_path / "missing.jsonl")
    write_episodes(make_episodes(2), tmp_path / "t.jsonl")
    with (tmp_path / "t.jsonl").open("a") as fh:
        fh.write('{"persona": 1}\n')
    with pytest.raises(DataError, match=r"t\.jsonl:3: not an episode"):
        read_episodes(tmp_path)
