"""The agent's one tool: `sql`, one statement at a time into its sandbox DB, under a default-deny authorizer.

Its own module, importing nothing of this package, because it runs where the agent's
code runs: inside the jail (whose worker imports only this and smolagents), or
shipped as source into a remote kernel.
"""

from __future__ import annotations

from smolagents import Tool


class SqlTool(Tool):
    """One SQL statement against the sandbox DB; errors are returned, not raised.

    Self-contained on purpose: remote executors send this class's source into
    their kernel, so every import and constant lives inside it, and `__init__`
    arguments have defaults (inside a remote sandbox the DB is `sandbox.db` in the
    kernel's working directory).
    """

    name = "sql"
    description = (
        "Run ONE SQLite statement against the sandbox database and return the result as text. "
        "Use ? placeholders with `params` for values (safer than quoting). "
        "SELECT returns rows (first 50); INSERT/UPDATE/DELETE return the number of rows changed. "
        "You may write only to the tables judgments and story_tags. "
        "A rejected statement returns a line starting with 'error:' and SQLite's reason; fix the row and retry."
    )
    inputs = {
        "statement": {"type": "string", "description": "exactly one SQL statement"},
        "params": {
            "type": "array",
            "description": "values for the ? placeholders, in order",
            "nullable": True,
        },
    }
    output_type = "string"

    def __init__(self, db_path: str = "sandbox.db"):
        super().__init__()
        self.db_path = db_path

    # Reads anywhere in main; writes only to the judgment tables; these functions only. Not printf/format:
    # printf('%.*c', 2000000000, 'x') spends seconds inside one call, where no limit or progress check reaches.
    # (Space-separated strings: smolagents only ships string/dict class attributes to remote kernels.)
    writable = "judgments story_tags"
    functions = (
        "abs avg coalesce count group_concat ifnull iif instr json json_array json_each json_extract "
        "json_group_array json_object length like glob lower ltrim max min nullif replace round "
        "rtrim substr substring sum total trim typeof upper char unicode quote random row_number rank dense_rank"
    )

    max_length = 1_000_000  # bytes of one string, blob or statement

    def authorize(self, action, arg1, arg2, db_name, trigger):
        """Default-deny sqlite3 authorizer: anything not allowed here is refused."""
        import sqlite3

        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ:
            return sqlite3.SQLITE_OK if db_name in ("main", None) else sqlite3.SQLITE_DENY
        if action in (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE):
            return sqlite3.SQLITE_OK if db_name == "main" and arg1 in self.writable.split() else sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION:
            return sqlite3.SQLITE_OK if str(arg2).lower() in self.functions.split() else sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_DENY

    def progress(self):
        """Called every 10k VM steps: abort a statement after ~20M (no endless recursive queries)."""
        self.budget = self.budget - 1
        return 1 if self.budget < 0 else 0

    def forward(self, statement: str, params: list | None = None) -> str:
        import sqlite3

        if not isinstance(statement, str) or not statement.strip():
            return "error: give one SQL statement as a string"
        if params is not None and not isinstance(params, (list, tuple)):
            return "error: params must be a list of values"
        conn = None
        try:
            conn = sqlite3.connect(self.db_path, isolation_level=None, timeout=10)
            conn.execute("PRAGMA foreign_keys = ON")
            # One value or statement of at most 1 MB: a single printf/replace/zeroblob call cannot
            # allocate gigabytes or run for minutes between two progress-handler checks.
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.max_length)
            conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, self.max_length)
            conn.setlimit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1000)
            conn.set_authorizer(self.authorize)
            self.budget = 2000
            conn.set_progress_handler(self.progress, 10000)
            cursor = conn.execute(statement, list(params or []))
            if cursor.description is None:
                return f"ok: {cursor.rowcount} row(s) changed"
            names = [column[0] for column in cursor.description]
            rows = cursor.fetchmany(51)
            lines = [" | ".join(names)] + [" | ".join(map(str, row)) for row in rows[:50]]
            if len(rows) > 50:
                lines.append("... (more rows; add LIMIT/WHERE)")
            text = "\n".join(lines)
            return text if len(text) <= 8000 else text[:8000] + "\n... (truncated)"
        except sqlite3.Error as exc:
            return f"error: {exc}"
        except (ValueError, TypeError, OverflowError, UnicodeError) as exc:
            return f"error: {exc}"
        finally:
            if conn is not None:
                conn.close()
