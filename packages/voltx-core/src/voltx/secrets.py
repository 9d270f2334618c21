"""Secret redaction for plugins: register a credential so it never reaches a log or a record.

from voltx.secrets import add_secret
add_secret(api_key)   # from now on replaced by *** in logs, ledgers, lineage and errors
"""

from voltx._logging import REDACTED, add_secret, is_secret_key, redact, redact_text

__all__ = ["REDACTED", "add_secret", "is_secret_key", "redact", "redact_text"]
