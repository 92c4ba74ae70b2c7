"""One classifier table per provider (llm-providers.md §3), all read by the engine in ``_engine``."""

from __future__ import annotations

from controlplane.byok.classifiers import (
    anthropic,
    cohere,
    deepseek,
    google,
    groq,
    minimax,
    mistral,
    moonshot,
    openai,
    openrouter,
    xai,
)
from controlplane.byok.classifiers._engine import ProviderClassifier

CLASSIFIERS: dict[str, ProviderClassifier] = {
    "anthropic": anthropic.CLASSIFIER,
    "openai": openai.CLASSIFIER,
    "google": google.CLASSIFIER,
    "groq": groq.CLASSIFIER,
    "openrouter": openrouter.CLASSIFIER,
    "mistral": mistral.CLASSIFIER,
    "deepseek": deepseek.CLASSIFIER,
    "moonshot": moonshot.CLASSIFIER,
    "minimax": minimax.CLASSIFIER,
    "cohere": cohere.CLASSIFIER,
    "xai": xai.CLASSIFIER,
}

__all__ = ["CLASSIFIERS", "ProviderClassifier"]
