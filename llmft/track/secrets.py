"""Keep keys, tokens and passwords out of everything a run records or prints (MLflow, run and sweep
files, .hydra/, logs, the launchers' job echo).

A value is a secret when its key looks like one (`task.api_key`, `hf_token`, `db_password`, ...,
also as a URL query parameter: `?token=...`), when it is the password part of a URL
(`http://user:pass@host`), or when it was read from the environment by `${oc.env:VAR}`.
Interpolations themselves are not secrets: they name where the secret lives, so they stay.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

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
# Also as Hydra echoes an override, with `:` escaped: http\://user\:password@host
_URL_USERINFO = re.compile(
    r"(?P<scheme>[a-zA-Z][\w+.\-]*\\?://)(?P<user>[^:/@\s\\]+)(?P<colon>\\?:)(?P<password>[^@/\s]+)@"
)
ENV_INTERPOLATION = "${oc.env:"


def is_secret_key(key: str) -> bool:
    """True for a (dotted) config key whose last part names a secret."""
    last = str(key).rsplit(".", 1)[-1].lstrip("+~")
    return bool(_SECRET_KEY.search(last)) and not _NOT_SECRET_KEY.match(last)


def _is_interpolation(value: object) -> bool:
    return isinstance(value, str) and value.startswith("${") and value.endswith("}")


def redact_text(text: str) -> str:
    """Hide URL passwords and the values of secret-looking `key=value` assignments in free text."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}{m['colon']}{REDACTED}@", text)

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


def hide_env_values(resolved: object, raw: object) -> object:
    """`resolved` (a resolved config tree) with each value that `raw` (the same tree unresolved) reads
    from the environment shown as its `${oc.env:VAR}` interpolation instead."""
    if isinstance(raw, str) and ENV_INTERPOLATION in raw:
        return raw
    if isinstance(resolved, dict) and isinstance(raw, dict):
        return {key: hide_env_values(value, raw.get(key)) for key, value in resolved.items()}
    if isinstance(resolved, list) and isinstance(raw, list) and len(resolved) == len(raw):
        return [hide_env_values(value, raw_value) for value, raw_value in zip(resolved, raw, strict=True)]
    return resolved


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """(uri without its user:password@, user, password); a URI without credentials comes back as given."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri, None, None
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=host)), parts.username, parts.password


class RedactingFilter(logging.Filter):
    """Hides secrets in every record a logging handler emits, its traceback included.

    conf/hydra/{job_logging,hydra_logging}/llmft.yaml put it on Hydra's handlers: the job logs
    (console and <run dir>/<job>.log) and the launchers' echo of each job's overrides (`#0 : ...`).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record: let the handler report it as usual
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        return True


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
