"""The command line: run, login, replay, eval, review."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sqlite3
import sys
from collections.abc import Sequence

from bot.alerts import LANGUAGES
from bot.app import load_gazetteer, run_service
from bot.channels import ChannelSettings, parse_channels
from bot.config import Config, load_config
from bot.demo import demo
from bot.errors import ConfigError, LoginRequired, RegionError, SkywatchError
from bot.evaluate import evaluate, load_labels, load_watch, write_report
from bot.logging_setup import configure_logging
from bot.replay import DeliveryPreview, JsonlWriter, SummaryWriter, replay
from bot.review import add_review_parser, cmd_review

__all__ = ["main"]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
CHANNELS_HELP = (
    "channel settings in the CHANNELS syntax, e.g. '1746302195[official, home=RU-KDA]'"
    " (default: CHANNELS)"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="skywatch: flag current drone, missile and air-defence reports "
        "in watched regions from Telegram channels.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("run", help="run the service (watcher, pipeline, alerts, commands)")
    login_cmd = commands.add_parser(
        "login", help="log the Telethon user client in and store its session"
    )
    login_cmd.add_argument(
        "--string",
        action="store_true",
        help="print a string session for TELEGRAM_SESSION instead of storing a session file",
    )

    replay_cmd = commands.add_parser(
        "replay", help="run Telegram Desktop exports (result.json) through the pipeline"
    )
    replay_cmd.add_argument("paths", nargs="+", metavar="PATH", help="export file or folder")
    replay_cmd.add_argument(
        "--regions",
        help="comma-separated ISO 3166-2 codes or region names (default: WATCH_REGIONS)",
    )
    replay_cmd.add_argument(
        "--jsonl", action="store_true", help="print one JSON object per flagged post"
    )
    replay_cmd.add_argument("--channels", help=CHANNELS_HELP)
    replay_cmd.add_argument(
        "--deliver",
        action="store_true",
        help="send the alerts these posts would have produced through BOT_API_URL "
        "(needs BOT_TOKEN and --chat)",
    )
    replay_cmd.add_argument(
        "--chat",
        type=int,
        action="append",
        default=[],
        metavar="CHAT_ID",
        help="a chat to send them to (repeat for several)",
    )
    replay_cmd.add_argument(
        "--lang", choices=LANGUAGES, default="ru", help="language of the alerts (default ru)"
    )
    replay_cmd.add_argument(
        "--db",
        default=":memory:",
        help="SQLite file to store posts and detections in "
        "(default: an in-memory database, nothing kept)",
    )

    eval_cmd = commands.add_parser("eval", help="score detection against labelled exports")
    eval_cmd.add_argument("paths", nargs="+", metavar="PATH", help="export file or folder")
    eval_cmd.add_argument("--labels", required=True, help="labels.jsonl")
    eval_cmd.add_argument(
        "--watch", help='watch.json ({"regions": [...]}; default: WATCH_REGIONS)'
    )
    eval_cmd.add_argument("--channels", help=CHANNELS_HELP)
    add_review_parser(commands)
    return parser


def _config(*, require_live: bool = False, require_watch: bool = True) -> Config:
    return load_config(
        resolve_region=load_gazetteer().resolve_region,
        require_live=require_live,
        require_watch=require_watch,
    )


def _watch_regions(raw: str | None, config: Config) -> tuple[str, ...]:
    if raw is None:
        if not config.watch_regions:
            raise ConfigError(["WATCH_REGIONS is missing (or give --regions)"])
        return config.watch_regions
    names = [part.strip() for part in raw.split(",") if part.strip()]
    if not names:
        raise RegionError("--regions names no region")
    return load_gazetteer().resolve_regions(names)


def _channels(raw: str | None, config: Config) -> tuple[ChannelSettings, ...]:
    if raw is None:
        return config.channels
    channels, problems = parse_channels(raw, load_gazetteer().resolve_region)
    if problems:
        raise ConfigError([problem.replace("CHANNELS", "--channels") for problem in problems])
    return channels


DEMO_NOTE = """
That was a demo: the bundled sample export (bot/data/sample) through the whole pipeline,
rendered as a subscriber would read it. To monitor channels live:
  1. copy .env.example to .env and fill in TELEGRAM_API_ID and TELEGRAM_API_HASH
     (my.telegram.org), BOT_TOKEN (@BotFather), OPERATOR_IDS, WATCH_REGIONS and CHANNELS;
  2. log the user client in once: python -m bot login
  3. make run
"""


def _cmd_run() -> int:
    config = _config(require_watch=False)
    if not (config.telegram_api_id or config.telegram_api_hash or config.bot_token):
        # Nothing to connect with: show what the service does instead of only failing.
        configure_logging("WARNING", config.log_format)
        sys.stderr.write(
            "skywatch: no Telegram credentials are configured; running the demo instead.\n"
        )
        asyncio.run(demo(sys.stdout, config.alert_zone))
        sys.stdout.write(DEMO_NOTE)
        return EXIT_OK
    config = _config(require_live=True)
    configure_logging(config.log_level, config.log_format)
    try:
        asyncio.run(run_service(config))
    except LoginRequired as err:
        sys.stderr.write(f"skywatch: {err}\n")
        return EXIT_BAD_INPUT
    return EXIT_OK


def _cmd_login(args: argparse.Namespace) -> int:
    config = load_config(resolve_region=load_gazetteer().resolve_region, require_watch=False)
    configure_logging("INFO", "text")
    problems = []
    if config.telegram_api_id is None:
        problems.append("TELEGRAM_API_ID is missing (get it at my.telegram.org)")
    if not config.telegram_api_hash:
        problems.append("TELEGRAM_API_HASH is missing (get it at my.telegram.org)")
    if problems:
        raise ConfigError(problems)
    assert config.telegram_api_id is not None
    from bot.watcher import login  # lazily: Telethon is loaded only to log in or run

    session = asyncio.run(
        login(
            config.telegram_api_id,
            config.telegram_api_hash.value,
            config.session_path,
            string=args.string,
        )
    )
    if session is not None:
        sys.stderr.write(
            "skywatch: logged in. Put this line in .env; it is the account's login, "
            "keep it secret:\n"
        )
        sys.stdout.write(f"TELEGRAM_SESSION={session}\n")
    else:
        sys.stderr.write(f"skywatch: logged in; session stored in {config.session_path}\n")
    return EXIT_OK


def _cmd_replay(args: argparse.Namespace) -> int:
    config = _config(require_watch=args.regions is None)
    watch = _watch_regions(args.regions, config)
    channels = _channels(args.channels, config)
    deliver = None
    if args.deliver or args.chat:
        problems = []
        if not args.deliver:
            problems.append("--chat needs --deliver")
        if not args.chat:
            problems.append("--deliver needs at least one --chat CHAT_ID")
        if not config.bot_token:
            problems.append("BOT_TOKEN is missing (ask @BotFather)")
        if problems:
            raise ConfigError(problems)
        deliver = DeliveryPreview(
            config.bot_token,
            config.bot_api_url,
            tuple(dict.fromkeys(args.chat)),
            config.alert_zone,
            args.lang,
        )
    # Output is written after the replay commits: nothing is reported that was rolled back.
    writer = JsonlWriter(sys.stdout) if args.jsonl else SummaryWriter(sys.stdout)
    result = asyncio.run(
        replay(
            args.paths,
            watch,
            args.db,
            writer,
            channels=channels,
            grouping=config.grouping,
            deliver=deliver,
        )
    )
    writer.flush(result)
    return EXIT_OK


def _cmd_eval(args: argparse.Namespace) -> int:
    labels = load_labels(args.labels)
    config = _config(require_watch=args.watch is None)
    watch = load_watch(args.watch) if args.watch else _watch_regions(None, config)
    evaluation = asyncio.run(
        evaluate(
            args.paths,
            labels,
            watch,
            channels=_channels(args.channels, config),
            grouping=config.grouping,
        )
    )
    write_report(evaluation, sys.stdout)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the process exit status."""
    args = _parser().parse_args(argv)
    if not logging.getLogger().handlers:
        configure_logging("WARNING")
    try:
        if args.command == "run":
            return _cmd_run()
        if args.command == "login":
            return _cmd_login(args)
        if args.command == "replay":
            return _cmd_replay(args)
        if args.command == "review":
            return cmd_review(args)
        return _cmd_eval(args)
    except ConfigError as err:
        sys.stderr.write(f"skywatch: {err}\nSet these in .env (see .env.example).\n")
        return EXIT_BAD_INPUT
    except SkywatchError as err:
        sys.stderr.write(f"skywatch: {err}\n")
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # The reader went away (`... | head`): say nothing more, and do not let Python
        # complain about flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except sqlite3.Error as err:
        sys.stderr.write(f"skywatch: database error, nothing was committed: {err}\n")
        return EXIT_FAILURE
