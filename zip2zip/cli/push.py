"""``zip2zip push``: upload an exported repo folder to the Hugging Face Hub."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "push",
        help="upload an exported repo folder to the Hugging Face Hub",
        description=(
            "Upload OUT_DIR (written by `zip2zip export`) to REPO_ID with huggingface_hub (create_repo, then "
            "upload_folder). The token comes from HF_TOKEN or the login stored by `hf auth login`; it is never "
            "read from the command line."
        ),
    )
    p.add_argument("folder", metavar="OUT_DIR")
    p.add_argument("repo_id", metavar="REPO_ID", help="user-or-org/name")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--revision", default=None, help="branch to upload to")
    p.add_argument("--commit-message", default=None)
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from zip2zip.hub.export import push_repo
    from zip2zip.hub.model_card import ExportError

    try:
        info = push_repo(
            args.folder,
            args.repo_id,
            private=args.private or None,
            revision=args.revision,
            commit_message=args.commit_message,
            create_pr=args.create_pr,
        )
    except (ExportError, PermissionError) as error:
        raise SystemExit(f"zip2zip push: {error}") from None
    print(f"uploaded {args.folder} to {args.repo_id}: {getattr(info, 'commit_url', info)}")
    return 0
