"""`streamlit` with a Python audit hook that logs every file the server opens for writing (privacy tests).

    python tests/e2e/audited_streamlit.py LOG_FILE run streamlit_app.py [streamlit options]

Each line of LOG_FILE is `event<TAB>absolute path`: `open` for a file opened to write, append or
create (builtin open and os.open, including the anonymous temp files of tempfile.TemporaryFile),
`mkstemp`/`mkdtemp` for tempfile, `mkdir`, `rename` and `remove`. The app itself runs unchanged.
"""

from __future__ import annotations

import os
import sys

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def install(log_path: str) -> None:
    out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # before the hook: not logged

    def record(event: str, path) -> None:
        if path is None or isinstance(path, int):
            return
        try:
            name = os.path.abspath(os.fsdecode(os.fspath(path)))
        except (TypeError, ValueError):
            name = repr(path)
        os.write(out, f"{event}\t{name}\n".encode("utf-8", "backslashreplace"))

    def hook(event: str, args) -> None:
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & WRITE_FLAGS)
            if writing:
                record("open", path)
        elif event in ("tempfile.mkstemp", "tempfile.mkdtemp"):
            record(event.split(".")[1], args[0])
        elif event == "os.mkdir":
            record("mkdir", args[0])
        elif event in ("os.rename", "shutil.move"):
            record("rename", args[1])
        elif event == "os.remove":
            record("remove", args[0])

    sys.addaudithook(hook)


if __name__ == "__main__":
    install(sys.argv[1])
    sys.argv = ["streamlit", *sys.argv[2:]]
    from streamlit.web.cli import main

    sys.exit(main())
