"""The project's text corpora (documents, their sources, the store on disk, training mixes) and reading a user's files."""
