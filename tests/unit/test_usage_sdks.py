"""usage_from and response_info on the response types of today's SDKs (openai, anthropic,
google-genai), cross-checked with genai-prices' own extractors on the same JSON."""

from __future__ import annotations

from typing import Any

import anthropic.types as anthropic_types
import genai_prices
import pytest
from google.genai import types as gemini
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response as OpenAIResponse

from stream_mlops.client.usage import Response, Usage, UsageError, response_info, usage_from

CHAT = ChatCompletion.model_validate({
    "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
    "choices": [], "usage": {
        "prompt_tokens": 1000, "completion_tokens": 300, "total_tokens": 1300,
        "prompt_tokens_details": {"cached_tokens": 400, "cache_write_tokens": 200},
        "completion_tokens_details": {"reasoning_tokens": 120}}})
# The last chunk of a stream with include_usage: no choices, the usage.
LAST_CHUNK = ChatCompletionChunk.model_validate({
    "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
    "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57}})
CHUNK = ChatCompletionChunk.model_validate({
    "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "delta": {"content": "hi"}}]})
RESPONSES = OpenAIResponse.model_validate({
    "id": "r", "object": "response", "created_at": 1, "model": "o4-mini-2025-04-16",
    "output": [], "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
    "usage": {"input_tokens": 900, "output_tokens": 500, "total_tokens": 1400,
              "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 50},
              "output_tokens_details": {"reasoning_tokens": 300}}})
EMBEDDING = CreateEmbeddingResponse.model_validate({
    "object": "list", "model": "text-embedding-3-small",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}],
    "usage": {"prompt_tokens": 8, "total_tokens": 8}})
CLAUDE = anthropic_types.Message.model_validate({
    "id": "m", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
    "content": [], "stop_reason": "end_turn", "usage": {
        "input_tokens": 20, "output_tokens": 30, "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 50,
        "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 30},
        "service_tier": "priority"}})
GEMINI = gemini.GenerateContentResponse.model_validate({
    "model_version": "gemini-2.5-flash", "usage_metadata": {
        "prompt_token_count": 1200, "cached_content_token_count": 800,
        "candidates_token_count": 100, "thoughts_token_count": 250,
        "tool_use_prompt_token_count": 30}})


@pytest.mark.parametrize(("response", "usage", "info"), [
    # OpenAI counts cache reads and writes in prompt_tokens and reasoning in completion.
    (CHAT, Usage(1000, 300, 400, 200), Response("gpt-4o-2024-08-06", "openai", "chat")),
    (LAST_CHUNK, Usage(50, 7), Response("gpt-4o-mini", "openai", "chat")),
    (RESPONSES, Usage(900, 500, 100, 50), Response("o4-mini-2025-04-16", "openai", "chat")),
    (EMBEDDING, Usage(8, 0), Response("text-embedding-3-small", "openai", "embeddings")),
    # Anthropic's input_tokens exclude the cache: 20 + 100 read + 50 written.
    (CLAUDE, Usage(170, 30, 100, 50, 30, "priority"),
     Response("claude-sonnet-4-5-20250929", "anthropic", "chat")),
    # Gemini: prompt (cached content included) + tool-use prompt; candidates + thoughts.
    (GEMINI, Usage(1230, 350, 800), Response("gemini-2.5-flash", "gcp.gemini",
                                             "generate_content")),
])
def test_real_sdk_responses(response: Any, usage: Usage, info: Response) -> None:
    assert usage_from(response) == usage
    assert response_info(response) == info
    # The same as the JSON it came from (what a raw HTTP client or LiteLLM hands over).
    as_json = response.model_dump(mode="json")
    assert usage_from(as_json) == usage
    assert response_info(as_json).model == info.model


@pytest.mark.parametrize(("response", "provider", "flavor"), [
    (CHAT, "openai", "chat"), (RESPONSES, "openai", "responses"),
    (CLAUDE, "anthropic", "default"), (GEMINI, "google", "default")])
def test_agrees_with_genai_prices_extractors(response: Any, provider: str,
                                             flavor: str) -> None:
    data = response.model_dump(mode="json", by_alias=True, exclude_none=True)
    theirs = genai_prices.extract_usage(data, provider_id=provider, api_flavor=flavor).usage
    ours = usage_from(response)
    assert ours is not None
    assert (ours.prompt_tokens, ours.cached_tokens, ours.completion_tokens) == (
        theirs.input_tokens, theirs.cache_read_tokens, theirs.output_tokens)
    assert ours.cache_write_tokens == (theirs.cache_write_tokens or 0)


def test_a_stream_chunk_before_the_last_has_no_usage() -> None:
    assert usage_from(CHUNK) is None
    assert response_info(CHUNK).model == "gpt-4o-mini"


@pytest.mark.parametrize(("usage", "message"), [
    ({"prompt_tokens": -5, "completion_tokens": 1}, "usage.prompt_tokens must be a whole"),
    ({"prompt_tokens": float("nan"), "completion_tokens": 1}, "got nan"),
    ({"prompt_tokens": 10.5}, "got 10.5"),
    ({"prompt_tokens": "10"}, "must be a whole number of tokens, got '10'"),
    ({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": float("inf")}},
     "usage.prompt_tokens_details.cached_tokens must be a whole number"),
    ({"input_tokens": None, "output_tokens": 3}, "usage.input_tokens is missing or None"),
    ({"input_tokens": 3, "output_tokens": None}, "usage.output_tokens is missing or None"),
    ({"total_tokens": 3}, "none of prompt_tokens, input_tokens"),
])
def test_unreadable_usage_is_an_error_naming_the_field(usage: dict[str, Any],
                                                       message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        usage_from({"usage": usage})


def test_a_gemini_response_without_prompt_count_is_an_error() -> None:
    broken = gemini.GenerateContentResponse.model_validate({
        "usage_metadata": {"candidates_token_count": 5}})
    with pytest.raises(UsageError, match=r"usage\.prompt_token_count is missing"):
        usage_from(broken)
