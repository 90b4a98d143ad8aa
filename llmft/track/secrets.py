"""Keep keys, tokens and passwords out of everything a run records (MLflow, env.json, .hydra/).

A value is a secret when its key looks like one (`task.api_key`, `hf_token`, `db_password`, ...),
or when it is the password part of a URL (`http://user:pass@host`). Interpolations such as
`${oc.env:LLMFT_API_KEY}` are not secrets: they name where the secret lives, so they stay.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "***"
_SECRET_WORD = (
    r"(?:api_?key|apikey|token|access_token|password|passwd|passphrase|secret|credentials?|private_key|auth)"
)
# A key whose last dotted part contains a secret word as a whole `_`-separated word: hf_token, api_key, ...
_SECRET_KEY = re.compile(rf"(?:^|[_\-]){_SECRET_WORD}(?:$|[_\-])", re.IGNORECASE)
# Special-token settings of tokenizers are not secrets.
_NOT_SECRET_KEY = re.compile(r"^(?:bos|eos|pad|unk|sep|cls|mask|additional_special)_tokens?$", re.IGNORECASE)
# `key=value` inside a command line or a Hydra override (with optional +, ++ or ~ prefixes).
_ASSIGNMENT = re.compile(r"(?P<key>[+~]{0,2}[\w.\-/@]+)=(?P<value>[^,\s]*)")
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][\w+.\-]*://)(?P<user>[^:/@\s]+):(?P<password>[^@/\s]+)@")


def is_secret_key(key: str) -> bool:
    """True for a (dotted) config key whose last part names a secret."""
    last = str(key).rsplit(".", 1)[-1].lstrip("+~")
    return bool(_SECRET_KEY.search(last)) and not _NOT_SECRET_KEY.match(last)


def _is_interpolation(value: object) -> bool:
    return isinstance(value, str) and value.startswith("${") and value.endswith("}")


def redact_text(text: str) -> str:
    """Hide URL passwords and the values of secret-looking `key=value` assignments in free text."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)

    def hide(match: re.Match) -> str:
        if is_secret_key(match["key"]) and match["value"] and not _is_interpolation(match["value"]):
            return f"{match['key']}={REDACTED}"
        return match[0]

    return _ASSIGNMENT.sub(hide, text)


def redact_value(key: str, value: object) -> object:
    """The value to record for `key`: REDACTED for a secret key, URL passwords hidden in strings."""
    if value is None or isinstance(value, bool) or _is_interpolation(value):
        return value
    if is_secret_key(key):
        return REDACTED
    return redact_text(value) if isinstance(value, str) else value


def redact_tree(tree: object, key: str = "") -> object:
    """A copy of nested dicts/lists (plain Python containers) with every secret replaced."""
    if isinstance(tree, dict):
        if is_secret_key(key):
            return REDACTED
        return {k: redact_tree(v, str(k)) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        if is_secret_key(key):
            return REDACTED
        return [redact_tree(item, "") for item in tree]
    return redact_value(key, tree)


def redact_arguments(arguments: Iterable[str]) -> list[str]:
    """A command line or list of Hydra overrides with secret values replaced."""
    return [redact_text(str(argument)) for argument in arguments]
