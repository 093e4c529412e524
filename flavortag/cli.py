"""The ``flavortag`` command: one entry point, one subcommand per app (:mod:`flavortag.apps`).

Hydra apps (``generate``, ``train``, ``tune``, ``evaluate``, ``predict``, ``compare``)
take ``key=value`` overrides, ``--help`` shows their config groups and
``--cfg job`` prints the composed config. ``convert``, ``info``, ``export`` and
``shard`` are plain argparse commands.

Errors: every command reports a runtime error as one line on stderr,
``flavortag <command>: error: <what, where, and the fix>`` (see
:func:`describe_error`), and exits with 2 for a usage error (a wrong, missing
or unknown option or config key: :class:`flavortag.errors.UsageError`, Hydra's
and OmegaConf's config errors, argparse), 75 for a training stopped by
SIGTERM / SIGUSR1 after its checkpoint (resume by running it again) and 1 for
anything else. The
traceback is printed only with ``-v`` / ``--verbose`` (anywhere among the
arguments) or ``HYDRA_FULL_ERROR=1``. For the Hydra apps the command sets
``HYDRA_FULL_ERROR=1`` itself, Hydra's documented switch that makes it
re-raise instead of printing its own trimmed traceback, so that the error
reaches this module.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import traceback

from flavortag import errors
from flavortag.errors import CarriedError

COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("flavortag.apps.generate", "make samples with Pythia 8 + a parametric detector (Hydra)"),
    "train": ("flavortag.apps.train", "train a tagger: model=mlp|bdt|deepsets|transformer (Hydra)"),
    "tune": ("flavortag.apps.tune", "hyperparameter search with optuna; many workers share one study (Hydra)"),
    "evaluate": ("flavortag.apps.evaluate", "metrics, plots, working points of a trained run (Hydra)"),
    "predict": ("flavortag.apps.predict", "score new files, write probabilities and discriminants (Hydra)"),
    "compare": ("flavortag.apps.compare", "compare runs side by side: table + rejection overlays (Hydra)"),
    "calibrate": ("flavortag.apps.calibrate", "fit a sample's impact-parameter resolution scale, no labels (Hydra)"),
    "robustness": ("flavortag.apps.robustness", "taggers on nominal vs shifted samples: kept fractions, ablations (Hydra)"),
    "export": ("flavortag.apps.export", "export a trained tagger to ONNX + TorchScript, working points beside"),
    "convert": ("flavortag.apps.convert", "convert event files between text, ROOT and Parquet"),
    "shard": ("flavortag.apps.shard", "mixed-class, shuffled, row-grouped Parquet shards for cluster training"),
    "info": ("flavortag.apps.info", "summarise event files (counts, multiplicity, classes)"),
    "trust": ("flavortag.apps.trust", "rewrite a trusted old pickle checkpoint as a data-only file"),
    "benchmark": ("flavortag.apps.benchmark", "shared tasks: list, make <task>, score <task> <preds>, leaderboard"),
}

USAGE = """usage: flavortag <command> [args...]

Flavour tagging of e+e- events (uds / cc / bb at the Z pole) and jets (light / c / b / g, e.g. ZH at 250 GeV).

commands:
{commands}

Hydra commands take overrides, e.g.
  flavortag generate n_events=2000 flavours=[bb,cc] out=samples/test
  flavortag train model=transformer trainer.max_epochs=10
  flavortag train -m model=mlp,bdt,deepsets,transformer
  flavortag tune hparams_search=transformer n_trials=20
  flavortag evaluate run_id=<mlflow run id>
Run `flavortag <command> --help` for the options of one command.
Errors are one line; add -v (or set HYDRA_FULL_ERROR=1) for the traceback.
"""

#: Commands that parse their own arguments (argparse); the others are Hydra apps.
ARGPARSE_COMMANDS: frozenset[str] = frozenset({"convert", "info", "export", "shard", "trust", "benchmark"})
_VERBOSE_FLAGS = ("-v", "--verbose")
#: Lines of Hydra's and OmegaConf's messages that are noise on one line (or bad advice:
#: ``+key=value`` would append a mistyped key silently).
_DROPPED_LINES = re.compile(r"^(To append to your config use|full_key:|object_type=|reference_type=|"
                            r"Set the environment variable HYDRA_FULL_ERROR)")
#: OmegaConf's prefix on the message of a UsageError raised by one of our config resolvers.
_RESOLVER_USAGE = re.compile(r"^UsageError raised while resolving interpolation: ")
_RUN_NOT_FOUND = re.compile(r"Run (?:with id=|')([0-9A-Za-z_-]+)'? not found")
#: A ``key=`` hint in a message (``tracking.tracking_uri=``, ``label=``): lower-case dotted names only.
_KEY_HINT = re.compile(r"(?<![\w.=-])((?:[a-z][a-z0-9_]*\.)*([a-z][a-z0-9_]*))=")
#: Hydra's refusal of an unknown option of a config group, and the options it lists.
_UNKNOWN_GROUP_OPTION = re.compile(r"Could not find '(?:[\w/]+/)?([\w.-]+)'; Available options in '[\w/]+': ([^(;]+)")
#: Hydra's own command-line flags (``--help``, ``--cfg job``, ``-m``, ...): everything else that starts
#: with ``-`` is a mistyped ``key=value``.
_HYDRA_FLAGS = frozenset({
    "-h", "--help", "--hydra-help", "--version", "-c", "--cfg", "-p", "--package", "--resolve", "-i",
    "--info", "-m", "--multirun", "-cn", "--config-name", "-cp", "--config-path", "-cd", "--config-dir",
    "--run", "-r", "-sc", "--shell-completion", "--experimental-rerun"})


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
    return USAGE.format(commands="\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``flavortag <command> ...`` to the command's module."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] in ("-V", "--version"):
        from flavortag import __version__

        print(f"flavortag {__version__}")
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"flavortag: unknown command {command!r}\n", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return 2
    verbose = any(a in _VERBOSE_FLAGS for a in rest)
    rest = [a for a in rest if a not in _VERBOSE_FLAGS]
    full_error = verbose or _env_flag("HYDRA_FULL_ERROR")
    error: BaseException
    try:
        return _run(command, rest)
    except KeyboardInterrupt:
        print(f"flavortag {command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `flavortag ... | head`: the reader is gone, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except CarriedError as carried:  # an app's error, carried past Hydra's handler
        error = carried.error
    except Exception as exc:  # noqa: BLE001 - every error ends here, as one line
        error = exc
    error = _unknown_override(error, command, rest)
    if full_error:
        traceback.print_exception(error)
    else:
        print(f"flavortag {command}: error: {describe_error(error, command)}", file=sys.stderr)
    code = getattr(error, "exit_code", None)  # a training stopped by a signal: 75
    if isinstance(code, int):
        return code
    return 2 if is_usage_error(error) else 1


def _unknown_override(error: BaseException, command: str, rest: list[str]) -> BaseException:
    """Hydra's refusal of an override of a key the config lacks, as ``unknown key K; did you mean K2?``.

    (Hydra's own advice, to append it with ``+``, would let the typo through.)
    """
    hydra_errors = sys.modules.get("hydra.errors")
    cause = error.__cause__
    full_key = getattr(cause, "full_key", None)
    if (hydra_errors is None or not isinstance(error, hydra_errors.ConfigCompositionException)
            or not str(error).startswith("Could not override") or not full_key):
        return error
    from flavortag.apps.schema import unknown_override

    usage = errors.UsageError(unknown_override(command, str(full_key), rest))
    usage.__cause__ = error
    return usage


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _run(command: str, rest: list[str]) -> int:
    module = importlib.import_module(COMMANDS[command][0])
    if command in ARGPARSE_COMMANDS:
        return int(module.main(rest) or 0)
    _refuse_flags(command, rest)
    # Hydra reads sys.argv itself; the program name shows in its --help. With
    # HYDRA_FULL_ERROR set Hydra re-raises errors (its own and the app's) to us.
    sys.argv = [f"flavortag {command}", *rest]
    os.environ["HYDRA_FULL_ERROR"] = "1"
    errors.carry_to_cli = True
    try:
        module.main()
    finally:
        errors.carry_to_cli = False
    return 0


def _refuse_flags(command: str, rest: list[str]) -> None:
    """A ``--option`` given to a Hydra command is answered with its ``key=value`` spelling.

    ``flavortag evaluate --run-id X`` -> ``unknown option --run-id: flavortag evaluate takes
    key=value overrides: run_id=X`` (argparse would have printed Hydra's usage instead).
    """
    for i, arg in enumerate(rest):
        if not arg.startswith("-") or arg.split("=", 1)[0] in _HYDRA_FLAGS or arg == "--":
            continue
        if i > 0 and rest[i - 1] in ("--cfg", "-c", "--info", "-i", "--package", "-p"):
            continue
        name, has_value, value = arg.lstrip("-").partition("=")
        if not has_value and i + 1 < len(rest) and not rest[i + 1].startswith("-") and "=" not in rest[i + 1]:
            value = rest[i + 1]
        key = name.replace("-", "_")
        from flavortag.apps.schema import APPS, unknown_override
        from flavortag.apps.schema.check import schema_keys

        said = f"unknown option {arg.split('=', 1)[0]}: flavortag {command} takes key=value overrides"
        value = value or "..."
        if command not in APPS or key in schema_keys(APPS[command]):
            raise errors.UsageError(f"{said}: {key}={value}")
        hint = unknown_override(command, key, [])  # "unknown key K; did you mean K2?" or "...; the keys ..."
        close = re.search(r"did you mean ([\w.]+)\?$", hint)
        raise errors.UsageError(f"{said}; did you mean {close.group(1)}={value}?" if close else
                                f"{said}, and {key} is not a key: {hint.partition('; ')[2]}")


def _hints_as_flags(text: str, command: str) -> str:
    """The ``key=`` hints of a message spelt as the options of an argparse command.

    Messages made below the apps name config keys (``tracking.tracking_uri=...``,
    ``label=...``); ``flavortag export`` takes ``--tracking-uri``, ``info`` takes
    ``--label``. A key whose last part is one of the command's options is rewritten.
    """
    build_parser = getattr(importlib.import_module(COMMANDS[command][0]), "build_parser", None)
    if build_parser is None:
        return text
    options = {opt for action in build_parser()._actions for opt in action.option_strings}

    def flag(match: re.Match[str]) -> str:
        option = "--" + match.group(2).replace("_", "-")
        return f"{option} " if option in options else match.group(0)

    return _KEY_HINT.sub(flag, text)


def _group_option_hint(text: str) -> str:
    """Hydra's "Could not find 'model/transfomer'" with ``; did you mean transformer?``."""
    found = _UNKNOWN_GROUP_OPTION.search(text)
    if not found:
        return text
    import difflib

    options = [o.strip() for o in found.group(2).split(",") if o.strip()]
    close = difflib.get_close_matches(found.group(1), options, n=1, cutoff=0.6)
    return f"{text.rstrip()}; did you mean {close[0]}?" if close else text


def is_usage_error(exc: BaseException) -> bool:
    """True for a wrong use of a command (exit code 2): bad options or config keys/values."""
    if isinstance(exc, errors.UsageError):
        return True
    hydra_errors = sys.modules.get("hydra.errors")
    if hydra_errors is not None and isinstance(exc, hydra_errors.CompactHydraException):
        return True
    omegaconf_errors = sys.modules.get("omegaconf.errors")
    return omegaconf_errors is not None and isinstance(exc, omegaconf_errors.OmegaConfBaseException)


def _one_line(text: str) -> str:
    """A message on one line: noise lines dropped, a ``...:`` line's list joined with commas."""
    kept: list[str] = []
    listing = False
    for raw in str(text).splitlines():
        line = raw.strip()
        if line.startswith("Config search path:"):
            break
        if not line or _DROPPED_LINES.match(line):
            continue
        if listing:
            kept[-1] += (" " if kept[-1].endswith(":") else ", ") + line
            continue
        kept.append(line)
        listing = line.endswith(":") and line.startswith("Available")
    return "; ".join(line.rstrip(".;") if i < len(kept) - 1 else line for i, line in enumerate(kept))


def describe_error(exc: BaseException, command: str) -> str:
    """One line for ``exc``: its message (and its config cause), plus the fix where we know it,
    spelt as the command takes it (``key=value`` for the Hydra apps, ``--flags`` for the others)."""
    text = _describe_error(exc, command)
    return _hints_as_flags(text, command) if command in ARGPARSE_COMMANDS else text


def _describe_error(exc: BaseException, command: str) -> str:
    text = _RESOLVER_USAGE.sub("", _one_line(str(exc)))  # a config resolver's UsageError: its own words
    cause = exc.__cause__
    omegaconf_errors = sys.modules.get("omegaconf.errors")
    if cause is not None and omegaconf_errors is not None and isinstance(cause, omegaconf_errors.OmegaConfBaseException):
        text = f"{text.rstrip('.')}: {_one_line(str(cause))}"
    if omegaconf_errors is not None and isinstance(exc, omegaconf_errors.MissingMandatoryValue):
        key = getattr(exc, "full_key", None) or "the key"
        return f"{text}: give it on the command line, `flavortag {command} {key}=...`"
    if not text:
        text = type(exc).__name__
    elif isinstance(exc, KeyError | AttributeError | TypeError | IndexError | ZeroDivisionError):
        text = f"{type(exc).__name__}: {text}"
    found = _RUN_NOT_FOUND.search(text)
    if found:
        uri = os.environ.get("MLFLOW_TRACKING_URI") or _tracking_uri()
        return (f"no MLflow run {found.group(1)} in the store {uri}: see its runs with "
                f"`mlflow ui --backend-store-uri {uri}` (or `flavortag compare`), "
                "or give tracking.tracking_uri=<the store of the run>")
    if is_usage_error(exc):
        text = _group_option_hint(text)
        if "--help" not in text:
            text = f"{text} (see `flavortag {command} --help`)"
    return text


def _tracking_uri() -> str:
    mlflow = sys.modules.get("mlflow")
    if mlflow is None:
        from flavortag.schema.groups import DEFAULT_TRACKING_URI

        return DEFAULT_TRACKING_URI
    return str(mlflow.get_tracking_uri())


if __name__ == "__main__":
    sys.exit(main())
