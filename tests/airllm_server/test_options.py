"""Options, keep_alive and the pure text helpers of a generation."""

from __future__ import annotations

import math
import threading

import pytest

from app.airllm_server.errors import ApiError
from app.airllm_server.options import parse_keep_alive, parse_options


def test_defaults_are_ollamas_and_num_ctx_is_capped_by_the_model():
    s = parse_options(None, 4096, 512)
    assert (s.temperature, s.top_k, s.top_p, s.repeat_penalty, s.num_predict) == (0.8, 40, 0.9, 1.1, -1)
    assert s.num_ctx == 512 and not s.greedy
    s = parse_options({"temperature": 0, "stop": "x", "seed": 3.0}, 4096, None)
    assert s.greedy and s.stop == ["x"] and s.seed == 3 and s.explicit == {"temperature", "seed"}


@pytest.mark.parametrize("options", [{"temperature": "hot"}, {"top_k": 1.5}, {"stop": [1]}, {"num_ctx": 0}, [1]])
def test_bad_options_are_400(options):
    with pytest.raises(ApiError) as err:
        parse_options(options, 4096, None)
    assert err.value.status == 400


def test_keep_alive_numbers_and_go_durations():
    assert parse_keep_alive(None, "5m") == 300
    assert parse_keep_alive("1h30m", "5m") == 5400
    assert parse_keep_alive("250ms", "5m") == 0.25
    assert parse_keep_alive(0, "5m") == 0
    assert parse_keep_alive(-1, "5m") == math.inf
    assert parse_keep_alive("-1m", "5m") == math.inf
    with pytest.raises(ApiError):
        parse_keep_alive("5 min", "5m")


def test_stop_matcher_holds_back_a_possible_match():
    from app.airllm_server.generation import StopMatcher

    m = StopMatcher(["END"])
    assert m.feed("abc E") == ("abc ", False)
    assert m.feed("N") == ("", False)
    assert m.feed("Dx") == ("", True)
    m = StopMatcher(["END"])
    assert m.feed("E") == ("", False)
    assert m.feed("ast") == ("East", False)


def test_incremental_decoder_emits_text_per_token_with_spaces(model_dir):
    from transformers import AutoTokenizer

    from app.airllm_server.generation import IncrementalDecoder

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    ids = tok("Hello world, how are you today?", add_special_tokens=False)["input_ids"]
    dec = IncrementalDecoder(tok, threading.Lock())
    pieces = [dec.push(i) for i in ids]
    assert "".join(pieces) + dec.flush() == tok.decode(ids)
    assert sum(1 for p in pieces if p) >= len(ids) - 1
