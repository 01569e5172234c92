"""The config: strict YAML reading, the JSON schema, domain rules, sweeps and run settings.

`validate_config` is the entry point (the workflow calls it at parse time); `ConfigError` is the
one error type, its message naming the key path of every problem.
"""

from minnorm.config.schema import ConfigError, key_path, load_schema
from minnorm.config.validate import validate_config

__all__ = ["ConfigError", "key_path", "load_schema", "validate_config"]
