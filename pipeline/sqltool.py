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

    def connect(self, foreign_keys: bool = True):
        """The sandbox DB with every limit on and the authorizer installed (PRAGMAs first: it refuses them)."""
        import sqlite3

        conn = sqlite3.connect(self.db_path, isolation_level=None, timeout=10)
        conn.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        # One value or statement of at most 1 MB: a single printf/replace/zeroblob call cannot
        # allocate gigabytes or run for minutes between two progress-handler checks.
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.max_length)
        conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, self.max_length)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1000)
        conn.set_authorizer(self.authorize)
        self.budget = 2000
        conn.set_progress_handler(self.progress, 10000)
        return conn

    def forward(self, statement: str, params: list | dict | None = None) -> str:
        import sqlite3

        if not isinstance(statement, str) or not statement.strip():
            return "error: give one SQL statement as a string"
        if params is not None and not isinstance(params, (list, tuple, dict)):
            return "error: params must be a list of values (or a dict for :name placeholders)"
        params = dict(params) if isinstance(params, dict) else list(params or [])
        conn = None
        try:
            conn = self.connect()
            cursor = conn.execute(statement, params)
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
            return "error: " + self.explain(str(exc), statement, params)
        except (ValueError, TypeError, OverflowError, UnicodeError) as exc:
            return f"error: {exc}"
        finally:
            if conn is not None:
                conn.close()

    def explain(self, message: str, statement: str, params) -> str:
        """SQLite's reason, plus what to do about it where SQLite alone would not say."""
        if message == "FOREIGN KEY constraint failed":
            return self.missing_parents(statement, params) or message
        if message.startswith("not authorized"):
            if "function" in message:
                return f"{message} (allowed functions: {', '.join(self.functions.split())})"
            return (f"{message}: this tool runs SELECT on any table, and INSERT, UPDATE or DELETE on "
                    f"{' and '.join(self.writable.split())} only (no PRAGMA, ATTACH, CREATE, DROP or transactions)")
        if "syntax error" in message or "unrecognized token" in message or "unterminated" in message:
            return f"{message} (write values as ? placeholders in params: a quote inside a value ends the string)"
        if message.startswith("UNIQUE constraint failed: judgments"):
            return (f"{message} (that story already has a judgment: UPDATE it, or add ON CONFLICT DO NOTHING)")
        return message

    def missing_parents(self, statement: str, params) -> str | None:
        """Which parent row a foreign-key failure lacks, found by running the statement again with
        foreign keys off inside a transaction that is rolled back, and asking foreign_key_check."""
        import sqlite3

        conn = self.connect(foreign_keys=False)
        try:
            conn.set_authorizer(None)
            conn.execute("BEGIN")
            conn.set_authorizer(self.authorize)
            conn.execute(statement, params)
            conn.set_authorizer(None)
            run_ids = [row[0] for row in conn.execute("SELECT id FROM runs")]
            ids = [row[0] for row in conn.execute("SELECT id FROM stories ORDER BY id")]
            vocabulary = [row[0] for row in conn.execute("SELECT slug FROM tags ORDER BY rowid")]
            candidates = f"{ids[0]}-{ids[-1]}" if ids else "none"
            reasons = []
            for table, rowid, parent, fkid in conn.execute("PRAGMA foreign_key_check").fetchall():
                columns = [row[3] for row in conn.execute(f"PRAGMA foreign_key_list({table})") if row[0] == fkid]
                row = conn.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE rowid = ?", [rowid]).fetchone()
                values = dict(zip(columns, row, strict=True)) if row else {}
                if parent == "tags":
                    tag = values.get("tag")
                    hint = f" (did you mean {str(tag).lower()!r}?)" if str(tag).lower() in vocabulary else ""
                    reasons.append(f"tag {tag!r} is not in the vocabulary{hint}: use one of {', '.join(vocabulary)}")
                    continue
                run_id, story_id = values.get("run_id"), values.get("story_id")
                if "run_id" in values and run_id not in run_ids:
                    reasons.append(f"run_id {run_id!r} is not this run's id: use run_id = {run_ids[0]}"
                                   if run_ids else f"run_id {run_id!r} does not exist")
                elif "story_id" in values and story_id not in ids:
                    reasons.append(f"story id {story_id!r} is not a candidate ({candidates})")
                elif parent == "judgments":
                    reasons.append(f"insert the judgment for story {story_id} before its tags")
                else:
                    reasons.append(f"{table} row refers to a missing {parent} row {values}")
            unique = list(dict.fromkeys(reasons))
            return "; ".join(unique[:5]) + (f"; and {len(unique) - 5} more" if len(unique) > 5 else "") or None
        except sqlite3.Error:
            return None
        finally:
            conn.set_authorizer(None)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
