"""The exceptions of cmaudio, in one place. Each carries a one-line message that names the file,
key or flag at fault; front ends print it as it is (cli.main_wrapper) and exit with status 2 for
a user's error.

    ValueError
      AudioError       an audio file or array that cannot be used
      ConfigError      a config key or value that cannot be used
      CheckpointError  a model or state file that cannot be used
      DatasetError     a data set that cannot be used as asked
      EvaluationError  evaluation or sigma-search options that cannot be used
      VocoderError     a vocoder that cannot be loaded or does not match the model's mel
      UsageError       bad command-line input found after parsing
    RuntimeError
      TrainingError    a run that cannot start or continue
"""

from __future__ import annotations

__all__ = [
    "AudioError",
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "EvaluationError",
    "TrainingError",
    "UsageError",
    "VocoderError",
]


class AudioError(ValueError):
    """An audio file or array that cannot be used; the message is one line naming the file."""


class ConfigError(ValueError):
    """A config key or value that cannot be used; the message names the key."""


class CheckpointError(ValueError):
    """A model or state file that cannot be used; the message is one line naming the file."""


class DatasetError(ValueError):
    """A data set that cannot be used as asked; the message is one line naming the root or file."""


class EvaluationError(ValueError):
    """Evaluation or sigma-search options that cannot be used (with this model, classifier or
    data set); the message is one line naming the option."""


class VocoderError(ValueError):
    """A vocoder that cannot be loaded or does not match the model's mel front end."""


class UsageError(ValueError):
    """Bad command-line input detected after parsing (exit status 2)."""


class TrainingError(RuntimeError):
    """A run that cannot start or continue; the message is one line."""
