"""The project's configuration loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader


class LocalSecretsConfigLoader(OmegaConfigLoader):
    """An ``OmegaConfigLoader`` that reads ``conf/local/credentials*`` whatever ``--env`` is.

    Kedro replaces ``conf/local`` by the run environment (``--env azure``), but secrets belong in
    one git-ignored place: its credentials override those of base and of the run environment.
    """

    def __getitem__(self, key: str) -> dict[str, Any]:
        config = super().__getitem__(key)
        local = Path(str(self.conf_source)) / "local"
        if (
            key != "credentials"
            or (self.env or self.default_run_env) == "local"
            or not local.is_dir()
        ):
            return config
        secrets = self.load_and_merge_dir_config(
            str(local), self.config_patterns[key], key, set(), read_environment_variables=True
        )
        return {**config, **secrets}
