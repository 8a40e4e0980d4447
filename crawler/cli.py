"""The command line: `crawl [SEEDS]` (the default command), `crawl sql`, `crawl stats`, `crawl crawls`,
`crawl export`.

Options become Settings and one library call; errors the user can fix become one line on stderr and
a non-zero exit (2 for bad input, 1 for a failure while running), never a traceback.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
from click.core import ParameterSource
from click_default_group import DefaultGroup

from crawler import __version__, distributed, runner
from crawler.credentials import Credentials
from crawler.export import page_fields
from crawler.seeds import SeedError, read_seeds
from crawler.settings import Limits, Settings
from crawler.store.db import DatabaseRefused, StoreError, without_password
from crawler.store.query import (
    CRAWL_COLUMNS,
    QueryError,
    export_pages,
    list_crawls,
    readonly,
    write_rows,
)
from crawler.store.stats import format_stats, stats
from crawler.terminal import safe, safe_lines

DEFAULTS, LIMITS = Settings(), Limits()
DB_OPTION = click.option("--db", envvar="CRAWL_DB", default=DEFAULTS.db, show_default=True,
                         help="SQLAlchemy URL, or a path to a SQLite file. [env CRAWL_DB]")
FRONTIER_HELP = "A Redis URL: the frontier `crawl worker` processes share (needs a shared --db). [env CRAWL_FRONTIER]"
LEASE_OPTION = click.option("--lease", type=click.FloatRange(3), default=DEFAULTS.lease, show_default=True,
                            help="Seconds a claim from the shared frontier lasts unrenewed.")
CRAWL_OPTION = click.option("--crawl", "crawl_id", type=click.IntRange(1), default=None,
                            help="The crawl's id (see `crawl crawls`). [default: the latest]")
AUTH_OPTION = click.option("--auth", multiple=True, metavar="URL",
                           help="Basic auth for this URL's origin: http://USER:PASSWORD@HOST[:PORT]/ "
                                "(repeatable). Never stored: give it again to resume.")
QUIET_OPTION = click.option("--quiet", "-q", is_flag=True,
                            help="No progress display and no summary line (warnings and errors still show). "
                                 "This run only: a resume is not quiet unless told.")
USER_ERRORS: dict[type[Exception], int] = {
    SeedError: 2, runner.NothingToResume: 2, distributed.FrontierUnreachable: 1, runner.CrawlBusy: 1, QueryError: 2, DatabaseRefused: 2, StoreError: 1, ValueError: 2,
}


UNWRITABLE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS})


def one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Known failures print `crawl: message` on stderr and exit non-zero, without a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except tuple(USER_ERRORS) as exc:
            click.echo(f"crawl: {safe(str(exc))}", err=True)
            sys.exit(next(code for kind, code in USER_ERRORS.items() if isinstance(exc, kind)))
        except KeyboardInterrupt:  # Ctrl-C in a reading command (a crawl handles its signals itself)
            click.echo("crawl: interrupted", err=True)
            sys.exit(130)
        except OSError as exc:  # the output cannot be written: a full disk, a file too big (a closed pipe:
            if exc.errno not in UNWRITABLE:  # click exits 1 quietly, as `| head` expects)
                raise
            click.echo(f"crawl: cannot write the output: {exc.strerror}", err=True)
            sys.exit(1)

    return wrapper


class CrawlGroup(DefaultGroup):
    """The command group whose `--help` also lists the options of its default command, `crawl`."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help(ctx, formatter)
        command = self.commands[self.default_cmd_name]
        with click.Context(command, info_name=ctx.info_name, parent=None) as sub:
            records = [r for p in command.get_params(sub) if isinstance(p, click.Option)
                       and (r := p.get_help_record(sub)) is not None]
        with formatter.section("Options of `crawl [SEEDS]`"):
            formatter.write_dl(records)


@click.group(cls=CrawlGroup, default="crawl", default_if_no_args=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="crawl")
def cli() -> None:
    """A web crawler that keeps every page in a SQL database.

    \b
    crawl [OPTIONS] SEEDS...   crawl (the default command; its options are listed below)
    crawl [OPTIONS]            resume the latest unfinished crawl in --db
    crawl sql QUERY            ask the pages questions in SQL (read-only)
    crawl stats                a summary of the latest crawl
    crawl crawls               the crawls in --db
    crawl export               one crawl's pages as JSON Lines or CSV
    crawl recrawl              crawl the latest crawl's URLs again, asking only for what changed
    crawl changes              what changed between the latest crawl and the one before
    crawl worker               join a distributed crawl (--frontier redis://...) as one more worker
    crawl search TERMS         pages ranked by relevance to TERMS
    """


def settings_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--engine", type=click.Choice(["gevent", "threads"]), envvar="CRAWL_ENGINE",
                     default=DEFAULTS.engine, show_default=True, help="Greenlets, or a thread pool."),
        click.option("--concurrency", type=click.IntRange(1), default=LIMITS.concurrency, show_default=True,
                     help="Requests in flight in total."),
        DB_OPTION,
        click.option("--max-depth", type=click.IntRange(0), default=None, help="Link depth (seeds are 0)."),
        click.option("--max-pages", type=click.IntRange(0), default=0, show_default=True,
                     help="Stop after this many pages (0: no limit)."),
        click.option("--max-pages-per-host", type=click.IntRange(0), default=0, show_default=True,
                     help="Queue at most this many pages of one host (0: no limit)."),
        click.option("--scope", type=click.Choice(["host", "domain", "all"]), default=DEFAULTS.scope,
                     show_default=True, help="Which links to follow: the seeds' hosts, domains, or any."),
        click.option("--include", multiple=True, metavar="REGEX", help="Follow only URLs matching one."),
        click.option("--exclude", multiple=True, metavar="REGEX", help="Never follow URLs matching one."),
        click.option("--parse-workers", type=click.IntRange(0), default=os.cpu_count() or 1,
                     show_default="CPU count", help="Extraction processes (0: extract in the fetchers)."),
        click.option("--fetch-processes/--no-fetch-processes", default=DEFAULTS.fetch_processes, show_default=True,
                     help="The extraction processes fetch their pages too (not with --warc)."),
        click.option("--user-agent", default=DEFAULTS.user_agent, show_default=True),
        click.option("--header", multiple=True, metavar="'NAME: VALUE'",
                     help="Send this header with every request (repeatable)."),
        click.option("--proxy", default=None, metavar="URL", help="Send every request through this proxy."),
        click.option("--ca-bundle", default=None, metavar="FILE", help="Trust these CA certificates for https."),
        click.option("--insecure/--check-certificates", default=False, show_default=True,
                     help="Don't check TLS certificates."),
        click.option("--cookies/--no-cookies", default=True, show_default=True,
                     help="Keep the cookies servers set (per host, bounded) and send them back."),
        click.option("--per-host", type=click.IntRange(1), default=LIMITS.per_host, show_default=True,
                     help="Requests in flight to one host."),
        click.option("--delay", type=click.FloatRange(0), default=LIMITS.delay, show_default=True,
                     help="Seconds between request starts to one host."),
        click.option("--timeout", type=click.FloatRange(0.1), default=LIMITS.timeout, show_default=True,
                     help="Whole-response deadline per attempt, in seconds."),
        click.option("--retries", type=click.IntRange(0), default=LIMITS.retries, show_default=True),
        click.option("--max-bytes", type=click.IntRange(1), default=LIMITS.max_bytes, show_default=True,
                     help="Body cap after decompression."),
        click.option("--parse-timeout", type=click.FloatRange(0.1), default=LIMITS.parse_timeout,
                     show_default=True, help="Seconds one page's extraction may take."),
        click.option("--ignore-robots/--obey-robots", default=False, show_default=True,
                     help="Don't fetch or obey robots.txt (nor robots meta and nofollow)."),
        click.option("--allow-private/--no-allow-private", default=False, show_default=True,
                     help="Follow links to private, loopback and link-local addresses."),
        click.option("--sitemap", multiple=True, metavar="URL", help="Also read this sitemap (repeatable)."),
        click.option("--no-sitemaps/--sitemaps", default=False, show_default=True,
                     help="Don't follow the Sitemap: lines of robots.txt."),
        QUIET_OPTION,
        AUTH_OPTION,
        click.option("--warc", type=click.Path(dir_okay=False), default=None, metavar="FILE.warc.gz",
                     help="Record every HTTP exchange in WARC files FILE-00000.warc.gz, ..."),
        click.option("--frontier", envvar="CRAWL_FRONTIER", default=None, metavar="redis://HOST:PORT/N",
                     help=FRONTIER_HELP),
        LEASE_OPTION,
        click.option("--warc-max-size", type=click.IntRange(1), default=DEFAULTS.warc_max_size,
                     show_default=True, help="Bytes after which a new WARC file begins."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def settings_from(params: dict[str, Any]) -> Settings:
    limits = Limits(**{k: v for k, v in params.items() if k in Limits.__dataclass_fields__})
    top = {k: v for k, v in params.items() if k in Settings.__dataclass_fields__}
    tuples = {key: tuple(top[key]) for key in ("include", "exclude", "sitemap", "header")}
    return Settings(limits=limits, **top | tuples)


def given_on_command_line(ctx: click.Context) -> dict[str, Any]:
    """Options the user typed (or set in the environment): these override a resumed crawl's settings."""
    typed = {ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT}
    values = {k: v for k, v in ctx.params.items() if ctx.get_parameter_source(k) in typed or k == "quiet"}
    own = ("db", "auth")  # the database is named anyway; credentials are never stored
    return {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in values.items() if k not in own}


@cli.command("crawl")
@click.argument("seeds", nargs=-1)
@settings_options
@click.pass_context
@one_line_errors
def crawl_command(ctx: click.Context, seeds: tuple[str, ...], **params: Any) -> None:
    """Crawl SEEDS (URLs, or files of URLs, `-` for stdin); with no SEEDS, resume the latest unfinished crawl."""
    if not seeds and first_use(ctx):
        click.echo(ctx.parent.get_help() if ctx.parent else ctx.get_help())
        sys.exit(2)
    credentials = Credentials.from_urls(params["auth"])
    if seeds:
        urls, warnings = read_seeds(seeds, credentials)
        for warning in warnings:
            click.echo(f"crawl: {safe(warning)}", err=True)
        result = runner.start(settings_from(params), urls, credentials)
    elif params["frontier"]:
        result = runner.work(params["db"], params["frontier"], None, given_on_command_line(ctx), credentials)
    else:
        result = runner.resume(params["db"], given_on_command_line(ctx), credentials)
    report(result, params, bool(credentials))


def first_use(ctx: click.Context) -> bool:
    """`crawl` alone where there is no crawl.db yet: the user wants to know how to start, not a resume."""
    default_db = ctx.get_parameter_source("db") == ParameterSource.DEFAULT
    typed = set(given_on_command_line(ctx)) - {"quiet"}
    return default_db and not typed and not os.path.exists(DEFAULTS.db.removeprefix("sqlite:///"))


@cli.command("worker")
@click.option("--frontier", envvar="CRAWL_FRONTIER", required=True, metavar="redis://HOST:PORT/N",
              help=FRONTIER_HELP)
@DB_OPTION
@CRAWL_OPTION
@click.option("--engine", type=click.Choice(["gevent", "threads"]), envvar="CRAWL_ENGINE",
              default=DEFAULTS.engine, show_default=True, help="Greenlets, or a thread pool.")
@click.option("--concurrency", type=click.IntRange(1), default=LIMITS.concurrency, show_default=True,
              help="Requests in flight from this worker.")
@click.option("--parse-workers", type=click.IntRange(0), default=os.cpu_count() or 1,
              show_default="CPU count", help="Extraction processes (0: extract in the fetchers).")
@LEASE_OPTION
@QUIET_OPTION
@AUTH_OPTION
@click.pass_context
@one_line_errors
def worker_command(ctx: click.Context, frontier: str, db: str, crawl_id: int | None, **params: Any) -> None:
    """Join a running distributed crawl (the latest, or --crawl) as one more worker; its settings come
    from the crawl's row, only this process's own options from here. Exits 0 when the crawl is finished."""
    overrides = {k: v for k, v in given_on_command_line(ctx).items() if k not in ("frontier", "crawl_id")}
    result = runner.work(db, frontier, crawl_id, overrides, Credentials.from_urls(params["auth"]))
    if result.status == "interrupted":
        click.echo("crawl: worker stopped; its claims went back to the shared frontier", err=True)
    if result.nothing_fetched:
        click.echo(f"crawl: no page could be fetched: {result.unreachable} of {result.pages} got no answer "
                   "(the host down, its name unknown, TLS failing or timing out; see the error column)", err=True)
    if not params["quiet"]:
        click.echo(result.summary())
    sys.exit(result.exit_code)


def report(result: runner.Result, params: dict[str, Any], authenticated: bool = False) -> None:
    if result.status == "interrupted" and params.get("frontier"):
        click.echo("crawl: stopped; its claims went back to the shared frontier, where the other workers "
                   "(or `crawl worker`) go on", err=True)
    elif result.status == "interrupted":
        named = without_password(params["db"])
        given = " (with its password)" if named != params["db"] else ""
        auth = " and --auth URL for the credentials, which are not stored" if authenticated else ""
        click.echo(f"crawl: interrupted; run `crawl --db {named}`{given}{auth} to resume", err=True)
    if result.nothing_fetched:
        click.echo(f"crawl: no page could be fetched: {result.unreachable} of {result.pages} got no answer "
                   "(the host down, its name unknown, TLS failing or timing out; see the error column)", err=True)
    if not params["quiet"]:
        click.echo(result.summary())
    sys.exit(result.exit_code)


@cli.command("recrawl")
@click.option("--crawl", "crawl_id", type=int, default=None, help="The crawl to revalidate (default: the latest).")
@settings_options
@click.pass_context
@one_line_errors
def recrawl_command(ctx: click.Context, crawl_id: int | None, **params: Any) -> None:
    """A new crawl with an earlier crawl's seeds and settings (options given here override them) that asks
    for each URL it stored with If-None-Match / If-Modified-Since: a 304 keeps the earlier page's fields."""
    overrides = {k: v for k, v in given_on_command_line(ctx).items() if k != "crawl_id"}
    credentials = Credentials.from_urls(params["auth"])
    report(runner.recrawl(params["db"], crawl_id, overrides, credentials), params, bool(credentials))


@cli.command("sql")
@click.argument("query")
@DB_OPTION
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "jsonl"]), default="table",
              show_default=True, help="table shows the first 1000 rows; the others stream every row.")
@one_line_errors
def sql_command(query: str, db: str, fmt: str) -> None:
    """Run a read-only SQL QUERY against the crawl database; writes are refused."""
    with readonly(db, query) as (columns, rows):
        write_rows(sys.stdout, columns, rows, fmt)


@cli.command("stats")
@DB_OPTION
@CRAWL_OPTION
@one_line_errors
def stats_command(db: str, crawl_id: int | None) -> None:
    """Pages, statuses, errors, hosts and speed of the latest crawl (or of --crawl ID)."""
    click.echo(safe_lines(format_stats(stats(db, crawl_id))))


@cli.command("crawls")
@DB_OPTION
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@one_line_errors
def crawls_command(db: str, fmt: str) -> None:
    """One line per crawl: id, status, times, active seconds, pages, errors, seeds."""
    rows = list_crawls(db)
    if fmt != "json":  # a list of seeds reads better as one space-separated cell
        rows = [[*row[:-1], " ".join(row[-1])] for row in rows]
    write_rows(sys.stdout, CRAWL_COLUMNS, rows, fmt)


@cli.command("export")
@DB_OPTION
@CRAWL_OPTION
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--fields", default=None, metavar="A,B,...",
              help="Columns to write (and `links`). [default: all; jsonl adds links]")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              show_default=True, help="File to write, or - for stdout.")
@one_line_errors
def export_command(db: str, crawl_id: int | None, fmt: str, fields: str | None, output: str) -> None:
    """Write one crawl's pages, one record per page, as JSON Lines or CSV, streamed."""
    chosen = page_fields(fields, fmt)
    if output == "-":
        export_pages(db, crawl_id, fmt, chosen, sys.stdout)
        return
    with open(output, "w", encoding="utf-8", newline="") as out:
        export_pages(db, crawl_id, fmt, chosen, out, progress_bar if sys.stderr.isatty() else None)


def progress_bar(total: int) -> Callable[[Any], Any]:
    """A tqdm bar of `total` pages on stderr around the rows."""
    from tqdm import tqdm

    return lambda rows: tqdm(rows, total=total, unit=" pages", file=sys.stderr, dynamic_ncols=True)


@cli.command("search")
@click.argument("terms")
@DB_OPTION
@click.option("--crawl", "crawl_id", type=int, default=None, help="The crawl to search (default: the latest).")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@one_line_errors
def search_command(terms: str, db: str, crawl_id: int | None, limit: int, fmt: str) -> None:
    """Pages matching TERMS, best first: words, "a phrase", prefix*, -excluded."""
    from crawler.store.search import search

    columns, rows = search(db, terms, crawl_id, limit)
    write_rows(sys.stdout, columns, rows, fmt)


@cli.command("changes")
@DB_OPTION
@click.option("--crawl", "crawl_id", type=int, default=None, help="The newer crawl (default: the latest).")
@click.option("--since", type=int, default=None, help="The older crawl (default: the latest before it with the "
              "same seeds).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@one_line_errors
def changes_command(db: str, crawl_id: int | None, since: int | None, fmt: str) -> None:
    """One row per URL of either crawl: new, gone, changed, moved or unchanged."""
    from crawler.store.changes import COLUMNS, changes, tally

    new, old, rows = changes(db, crawl_id, since)
    write_rows(sys.stdout, COLUMNS, rows, fmt)
    if fmt == "table":
        click.echo(f"crawl {new} since crawl {old}: {tally(rows)}")


@cli.command("bench")
@click.option("--pages", type=click.IntRange(1), default=1000, show_default=True, help="Pages of the synthetic site.")
@click.option("--engine", type=click.Choice(["gevent", "threads"]), default=DEFAULTS.engine, show_default=True)
@click.option("--concurrency", type=click.IntRange(1), default=50, show_default=True,
              help="Requests in flight (and per host: the site is one host).")
@click.option("--parse-workers", type=click.IntRange(0), default=os.cpu_count() or 1,
              show_default="CPU count", help="Extraction processes.")
def bench_command(pages: int, engine: str, concurrency: int, parse_workers: int) -> None:
    """Crawl a local synthetic site into a temporary database; print pages/s, CPU and memory."""
    from crawler import bench

    try:
        result = bench.run(pages, engine, concurrency, parse_workers)
    except RuntimeError as exc:
        click.echo(f"crawl: {safe(str(exc))}", err=True)
        sys.exit(1)
    click.echo(result.report())
