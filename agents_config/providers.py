"""The LLM providers the product supports, as OpenClaw sees them (pure data, no I/O).

This is the single table of provider ids, display names and the environment variable OpenClaw reads
each provider's key from. ``controlplane.byok`` builds its validation catalog on top of it; the
OpenClaw config generator refers to keys only through these variable names.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents_config.inputs import name_or_given


@dataclass(frozen=True, slots=True)
class Provider:
    id: str  # OpenClaw provider id and model-ref prefix ("anthropic" in "anthropic/claude-...")
    display_name: str
    env_var: str  # the variable OpenClaw reads the key from (pushed as a Fly app secret)
    # Set only where OpenClaw needs an explicit ``models.providers.<id>`` block with an endpoint
    # (no bundled plugin, or a non-default API shape). Anthropic-compatible URLs omit ``/v1``.
    openclaw_base_url: str | None = None
    openclaw_api: str | None = None

    @property
    def explicit_block(self) -> bool:
        """OpenClaw 2026.9.6 needs ``baseUrl`` + ``api`` + ``models[]`` for this provider."""
        return self.openclaw_base_url is not None


# DeepSeek, Groq and Mistral are official EXTERNAL provider plugins in OpenClaw 2026.9.6
# (@openclaw/deepseek-provider, @openclaw/groq-provider, @openclaw/mistral-provider; see the package's
# docs/providers/<id>.md). A bare ``{apiKey}`` overlay makes the gateway try an npm install at boot and
# end with no models, so they get explicit OpenAI-compatible blocks (base URLs as those docs give them).


PROVIDERS: dict[str, Provider] = {
    p.id: p
    for p in (
        Provider("anthropic", "Anthropic", "ANTHROPIC_API_KEY"),
        Provider("openai", "OpenAI", "OPENAI_API_KEY"),
        Provider("google", "Google Gemini", "GEMINI_API_KEY"),
        Provider(
            "groq",
            "Groq",
            "GROQ_API_KEY",
            openclaw_base_url="https://api.groq.com/openai/v1",
            openclaw_api="openai-completions",
        ),
        Provider("openrouter", "OpenRouter", "OPENROUTER_API_KEY"),
        Provider(
            "mistral",
            "Mistral",
            "MISTRAL_API_KEY",
            openclaw_base_url="https://api.mistral.ai/v1",
            openclaw_api="openai-completions",
        ),
        Provider(
            "deepseek",
            "DeepSeek",
            "DEEPSEEK_API_KEY",
            # docs/providers/deepseek.md gives the base URL without /v1 (DeepSeek serves both forms)
            openclaw_base_url="https://api.deepseek.com",
            openclaw_api="openai-completions",
        ),
        Provider(
            "moonshot",
            "Moonshot (Kimi)",
            "MOONSHOT_API_KEY",
            openclaw_base_url="https://api.moonshot.ai/v1",
            openclaw_api="openai-completions",
        ),
        Provider(
            "minimax",
            "MiniMax",
            "MINIMAX_API_KEY",
            openclaw_base_url="https://api.minimax.io/anthropic",
            openclaw_api="anthropic-messages",
        ),
        Provider(
            "cohere",
            "Cohere",
            "COHERE_API_KEY",
            # not a bundled provider in OpenClaw 2026.9.6 (the real validator refuses a bare overlay)
            openclaw_base_url="https://api.cohere.ai/compatibility/v1",
            openclaw_api="openai-completions",
        ),
        Provider("xai", "xAI", "XAI_API_KEY"),
    )
}

PROVIDER_IDS: tuple[str, ...] = tuple(PROVIDERS)


def get_provider(provider_id: str) -> Provider:
    """The provider with this id; ``KeyError`` naming the known ids otherwise."""
    try:
        return PROVIDERS[provider_id]
    except KeyError:
        raise KeyError(
            f"unknown provider {name_or_given(provider_id)}; known: {', '.join(PROVIDER_IDS)}"
        ) from None


__all__ = ["PROVIDERS", "PROVIDER_IDS", "Provider", "get_provider"]
