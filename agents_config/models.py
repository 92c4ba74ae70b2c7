"""The model catalog routing chooses from: per provider, a few models with a quality tier and a cost rank.

Pure data. Model ids are the ones OpenClaw 2026.9.6's bundled provider catalogs use; a model ref is
``"<provider>/<model id>"`` (the model id may itself contain a slash, e.g. on OpenRouter or Groq).

``quality``: 1 basic, 2 standard (fine for everyday chat), 3 strong, 4 frontier.
``cost_rank``: 1 cheapest … 10 most expensive, comparable across providers (blended $/token, rounded).
``context_window`` / ``max_tokens``: emitted as ``contextWindow`` / ``maxTokens`` in the explicit
``models.providers.<id>.models[]`` rows (providers without a bundled plugin); None where the pinned
package documents no figure. Sources, all in the OpenClaw 2026.9.6 package:

* DeepSeek V4 Pro/Flash: docs/providers/deepseek.md (1,000,000 / 384,000).
* Groq GPT-OSS 120B: docs/providers/groq.md (context 131,072; no max output given). Llama 3.3 70B
  Versatile is NOT in the pinned Groq catalog table; we declare the row ourselves, without figures.
* Mistral Large/Small latest: docs/providers/mistral.md (262,144 / 16,384).
* Cohere Command A (03-2025): docs/providers/cohere.md (256,000 / 8,000; hidden there, previous gen).
* MiniMax M2.7: docs/providers/minimax.md (204,800 / 131,072).

Where the product and the pinned package differ (we keep the names PRODUCT.md uses):

* Kimi K2.5 (``moonshot/kimi-k2.5``): the pinned Moonshot catalog (docs/providers/moonshot.md) lists
  K3 and K2.7 Code, not K2.5; the figures (262,144 / 32,768) are the package's own K2.5 row in
  dist/extensions/nvidia/openclaw.plugin.json (also docs/providers/qwen.md for the context).
* MiniMax M2.1 (``minimax/MiniMax-M2.1``): the pinned MiniMax catalog lists M3 and M2.7, not M2.1;
  we reuse the documented M2.x figures of M2.7 (204,800 / 131,072).
"""

from __future__ import annotations

from dataclasses import dataclass

from agents_config.inputs import name_or_given
from agents_config.providers import PROVIDERS

QUALITY_BASIC = 1
QUALITY_STANDARD = 2
QUALITY_STRONG = 3
QUALITY_FRONTIER = 4


@dataclass(frozen=True, slots=True)
class ModelInfo:
    provider: str
    id: str
    name: str
    quality: int
    cost_rank: int
    context_window: int | None = None
    max_tokens: int | None = None

    @property
    def ref(self) -> str:
        return f"{self.provider}/{self.id}"


_MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("anthropic", "claude-opus-4-6", "Claude Opus 4.6", QUALITY_FRONTIER, 9),
    ModelInfo("anthropic", "claude-sonnet-4-6", "Claude Sonnet 4.6", QUALITY_STRONG, 6),
    ModelInfo("anthropic", "claude-haiku-4-5", "Claude Haiku 4.5", QUALITY_STANDARD, 3),
    ModelInfo("openai", "gpt-5.4", "GPT-5.4", QUALITY_FRONTIER, 7),
    ModelInfo("openai", "gpt-5.4-mini", "GPT-5.4 mini", QUALITY_STRONG, 3),
    ModelInfo("openai", "gpt-5.4-nano", "GPT-5.4 nano", QUALITY_BASIC, 1),
    ModelInfo("google", "gemini-3.1-pro-preview", "Gemini 3.1 Pro (preview)", QUALITY_FRONTIER, 6),
    ModelInfo("google", "gemini-3-flash-preview", "Gemini 3 Flash (preview)", QUALITY_STRONG, 2),
    ModelInfo("google", "gemini-3.1-flash-lite", "Gemini 3.1 Flash-Lite", QUALITY_STANDARD, 1),
    ModelInfo("groq", "openai/gpt-oss-120b", "GPT-OSS 120B (Groq)", QUALITY_STRONG, 2, 131_072),
    ModelInfo("groq", "llama-3.3-70b-versatile", "Llama 3.3 70B (Groq)", QUALITY_STANDARD, 2),
    ModelInfo(
        "openrouter", "anthropic/claude-sonnet-4-6", "Claude Sonnet 4.6 (OpenRouter)", QUALITY_STRONG, 6
    ),
    ModelInfo(
        "openrouter", "deepseek/deepseek-v4-flash", "DeepSeek V4 Flash (OpenRouter)", QUALITY_STANDARD, 1
    ),
    ModelInfo("mistral", "mistral-large-latest", "Mistral Large", QUALITY_STRONG, 4, 262_144, 16_384),
    ModelInfo("mistral", "mistral-small-latest", "Mistral Small", QUALITY_STANDARD, 1, 262_144, 16_384),
    ModelInfo("deepseek", "deepseek-v4-pro", "DeepSeek V4 Pro", QUALITY_STRONG, 3, 1_000_000, 384_000),
    ModelInfo("deepseek", "deepseek-v4-flash", "DeepSeek V4 Flash", QUALITY_STANDARD, 1, 1_000_000, 384_000),
    ModelInfo("moonshot", "kimi-k2.5", "Kimi K2.5", QUALITY_STRONG, 3, 262_144, 32_768),
    ModelInfo("minimax", "MiniMax-M2.1", "MiniMax M2.1", QUALITY_STRONG, 2, 204_800, 131_072),
    ModelInfo("minimax", "MiniMax-M2.7", "MiniMax M2.7", QUALITY_STRONG, 3, 204_800, 131_072),
    ModelInfo("cohere", "command-a-03-2025", "Command A", QUALITY_STRONG, 5, 256_000, 8_000),
    ModelInfo("xai", "grok-4.3", "Grok 4.3", QUALITY_FRONTIER, 7),
    ModelInfo("xai", "grok-4-fast-non-reasoning", "Grok 4 Fast", QUALITY_STANDARD, 1),
)

MODELS: dict[str, ModelInfo] = {m.ref: m for m in _MODELS}
MODEL_REFS: tuple[str, ...] = tuple(sorted(MODELS))


def get_model(ref: str) -> ModelInfo:
    """The model with this ref; ``KeyError`` with a readable message otherwise."""
    try:
        return MODELS[ref]
    except KeyError:
        raise KeyError(f"unknown model {name_or_given(ref)}; known: {', '.join(MODEL_REFS)}") from None


def models_of(provider_id: str) -> tuple[ModelInfo, ...]:
    """The provider's models, sorted by ref (a stable order, independent of the table's layout)."""
    return tuple(MODELS[ref] for ref in MODEL_REFS if MODELS[ref].provider == provider_id)


def _check_table() -> None:
    for m in _MODELS:
        if m.provider not in PROVIDERS:
            raise AssertionError(f"model {m.ref}: unknown provider")
        if not (QUALITY_BASIC <= m.quality <= QUALITY_FRONTIER and 1 <= m.cost_rank <= 10):
            raise AssertionError(f"model {m.ref}: quality or cost_rank out of range")
        if m.context_window is not None and m.max_tokens is not None and m.max_tokens > m.context_window:
            raise AssertionError(f"model {m.ref}: max_tokens exceeds context_window")
    if len(MODELS) != len(_MODELS):
        raise AssertionError("duplicate model ref in the catalog")


_check_table()

__all__ = [
    "MODELS",
    "MODEL_REFS",
    "ModelInfo",
    "QUALITY_BASIC",
    "QUALITY_FRONTIER",
    "QUALITY_STANDARD",
    "QUALITY_STRONG",
    "get_model",
    "models_of",
]
