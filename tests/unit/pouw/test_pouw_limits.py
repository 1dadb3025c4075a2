"""Policy limits: one test per limit, each naming the field and the limit; the hard caps."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pouw_factories import SAMPLING, chat_spec, completion_spec, embed_spec

from pouw.errors import INVALID_FIELD, LIMIT_EXCEEDED, PouwError
from pouw.jobspec import ChatInput, ChatMessage, ChatRole, CompletionInput, EmbedInput, ModelRef
from pouw.limits import DEFAULT_LIMITS, HARD_LIMITS, PouwLimits, check_jobspec


def _limit_error(spec: object, limits: PouwLimits = DEFAULT_LIMITS, now: int | None = None) -> PouwError:
    with pytest.raises(PouwError) as info:
        check_jobspec(spec, limits, now)  # type: ignore[arg-type]
    assert info.value.code == LIMIT_EXCEEDED
    return info.value


def test_defaults_sit_inside_the_hard_caps() -> None:
    assert DEFAULT_LIMITS.within(HARD_LIMITS)
    assert not HARD_LIMITS.within(DEFAULT_LIMITS)
    assert DEFAULT_LIMITS.max_prompt_bytes == 256 * 1024
    assert DEFAULT_LIMITS.max_tokens == 8192
    assert DEFAULT_LIMITS.max_messages == 256
    assert (DEFAULT_LIMITS.max_stop_strings, DEFAULT_LIMITS.max_stop_bytes) == (8, 64)
    assert DEFAULT_LIMITS.max_embed_inputs == 256
    assert DEFAULT_LIMITS.max_model_name_bytes == 128


def test_valid_jobs_pass() -> None:
    for spec in (completion_spec(), chat_spec(), embed_spec()):
        check_jobspec(spec)
        check_jobspec(spec, now=1_800_000_000 - 60)


def test_limits_must_be_non_negative_integers() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        PouwLimits(max_tokens=-1)
    with pytest.raises(ValueError, match="max_messages"):
        PouwLimits(max_messages=True)


def test_prompt_bytes() -> None:
    spec = completion_spec(input=CompletionInput("é" * (128 * 1024) + "x"))  # 256 KiB + 1 bytes
    err = _limit_error(spec)
    assert err.field == "input.prompt"
    assert str(err) == "input.prompt: 262145 bytes exceeds max_prompt_bytes=262144"
    check_jobspec(completion_spec(input=CompletionInput("é" * (128 * 1024))))


def test_chat_content_bytes_are_summed() -> None:
    half = "a" * (128 * 1024)
    messages = (ChatMessage(ChatRole.USER, half), ChatMessage(ChatRole.USER, half + "b"))
    spec = chat_spec(input=ChatInput(messages))
    err = _limit_error(spec)
    assert err.field == "input.messages"
    assert "262145 bytes of content exceeds max_prompt_bytes=262144" in err.message


def test_message_count() -> None:
    messages = tuple(ChatMessage(ChatRole.USER, "hi") for _ in range(257))
    err = _limit_error(chat_spec(input=ChatInput(messages)))
    assert err.field == "input.messages"
    assert "257 messages exceeds max_messages=256" in err.message


def test_chat_template_name() -> None:
    spec = chat_spec(input=ChatInput((ChatMessage(ChatRole.USER, "hi"),), "t" * 65))
    err = _limit_error(spec)
    assert err.field == "input.chat_template"
    assert "65 bytes exceeds max_chat_template_bytes=64" in err.message


def test_model_name() -> None:
    err = _limit_error(completion_spec(model=ModelRef("m" * 129, bytes(32))))
    assert err.field == "model.name"
    assert "129 bytes exceeds max_model_name_bytes=128" in err.message


def test_max_tokens() -> None:
    err = _limit_error(completion_spec(sampling=replace(SAMPLING, max_tokens=8193)))
    assert err.field == "sampling.max_tokens"
    assert "8193 exceeds max_tokens=8192" in err.message


def test_temperature() -> None:
    err = _limit_error(completion_spec(sampling=replace(SAMPLING, temperature_milli=2001)))
    assert err.field == "sampling.temperature"
    assert "2001 thousandths exceeds max_temperature_milli=2000" in err.message


def test_stop_string_count() -> None:
    err = _limit_error(completion_spec(sampling=replace(SAMPLING, stop=tuple(str(i) for i in range(9)))))
    assert err.field == "sampling.stop"
    assert "9 strings exceeds max_stop_strings=8" in err.message


def test_stop_string_bytes() -> None:
    err = _limit_error(completion_spec(sampling=replace(SAMPLING, stop=("ok", "s" * 65))))
    assert err.field == "sampling.stop[1]"
    assert "65 bytes exceeds max_stop_bytes=64" in err.message


def test_embed_input_count() -> None:
    err = _limit_error(embed_spec(input=EmbedInput(("x",) * 257)))
    assert err.field == "input.inputs"
    assert "257 inputs exceeds max_embed_inputs=256" in err.message


def test_embed_input_bytes() -> None:
    err = _limit_error(embed_spec(input=EmbedInput(("a" * 200_000, "b" * 62_145))))
    assert err.field == "input.inputs"
    assert "262145 bytes exceeds max_prompt_bytes=262144" in err.message


def test_fee() -> None:
    err = _limit_error(chat_spec(fee=1_000), PouwLimits(max_fee=999))
    assert err.field == "fee"
    assert "1000 units exceeds max_fee=999" in err.message


def test_deadline_too_far_ahead() -> None:
    err = _limit_error(completion_spec(deadline=1_000_000 + 3601), now=1_000_000)
    assert err.field == "deadline"
    assert "3601 seconds ahead exceeds max_deadline_s=3600" in err.message
    check_jobspec(completion_spec(deadline=1_000_000 + 3600), now=1_000_000)


def test_deadline_passed() -> None:
    with pytest.raises(PouwError) as info:
        check_jobspec(completion_spec(deadline=1_000_000), now=1_000_000)
    assert info.value.code == INVALID_FIELD
    assert "has passed" in str(info.value)


def test_custom_limits_apply() -> None:
    strict = PouwLimits(max_prompt_bytes=4)
    err = _limit_error(completion_spec(input=CompletionInput("hello")), strict)
    assert "5 bytes exceeds max_prompt_bytes=4" in err.message
