"""The model catalog routing chooses from: per provider, a few models with a quality tier and a cost rank.

Pure data. Model ids are the ones OpenClaw 2026.9.6's bundled provider catalogs use; a model ref is
``"<provider>/<model id>"`` (the model id may itself contain a slash, e.g. on OpenRouter or Groq).

``quality``: 1 basic, 2 standard (fine for everyday chat), 3 strong, 4 frontier.
``cost_rank``: 1 cheapest … 10 most expensive, comparable across providers (blended $/token, rounded).
"""

from __future__ import annotations

from dataclasses import dataclass

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
    ModelInfo("groq", "openai/gpt-oss-120b", "GPT-OSS 120B (Groq)", QUALITY_STRONG, 2),
    ModelInfo("groq", "llama-3.3-70b-versatile", "Llama 3.3 70B (Groq)", QUALITY_STANDARD, 2),
    ModelInfo("openrouter", "anthropic/claude-sonnet-4-6", "Claude Sonnet 4.6 (OpenRouter)", QUALITY_STRONG, 6),
    ModelInfo("openrouter", "deepseek/deepseek-v4-flash", "DeepSeek V4 Flash (OpenRouter)", QUALITY_STANDARD, 1),
    ModelInfo("mistral", "mistral-large-latest", "Mistral Large", QUALITY_STRONG, 4),
    ModelInfo("mistral", "mistral-small-latest", "Mistral Small", QUALITY_STANDARD, 1),
    ModelInfo("deepseek", "deepseek-v4-pro", "DeepSeek V4 Pro", QUALITY_STRONG, 3),
    ModelInfo("deepseek", "deepseek-v4-flash", "DeepSeek V4 Flash", QUALITY_STANDARD, 1),
    ModelInfo("moonshot", "kimi-k2.5", "Kimi K2.5", QUALITY_STRONG, 3),
    ModelInfo("minimax", "MiniMax-M2.1", "MiniMax M2.1", QUALITY_STRONG, 2),
    ModelInfo("minimax", "MiniMax-M2.7", "MiniMax M2.7", QUALITY_STRONG, 3),
    ModelInfo("cohere", "command-a-03-2025", "Command A", QUALITY_STRONG, 5),
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
        raise KeyError(f"unknown model {ref!r}; known: {', '.join(MODEL_REFS)}") from None


def models_of(provider_id: str) -> tuple[ModelInfo, ...]:
    """The provider's models, sorted by ref (a stable order, independent of the table's layout)."""
    return tuple(MODELS[ref] for ref in MODEL_REFS if MODELS[ref].provider == provider_id)


def _check_table() -> None:
    for m in _MODELS:
        if m.provider not in PROVIDERS:
            raise AssertionError(f"model {m.ref}: unknown provider")
        if not (QUALITY_BASIC <= m.quality <= QUALITY_FRONTIER and 1 <= m.cost_rank <= 10):
            raise AssertionError(f"model {m.ref}: quality or cost_rank out of range")
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
