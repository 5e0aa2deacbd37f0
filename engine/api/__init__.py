"""The HTTP API the product calls (FORMATS §4): FastAPI, API keys with scopes, problem+json."""

from engine.api.app import create_app
from engine.api.context import ApiContext
from engine.api.keys import KeyVerifier, Principal, create_key, list_keys, revoke_key
from engine.api.models import ApiKey

__all__ = ["ApiContext", "ApiKey", "KeyVerifier", "Principal", "create_app", "create_key", "list_keys", "revoke_key"]
