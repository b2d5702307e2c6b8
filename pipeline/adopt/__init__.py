"""`pipeline init`'s logic, pure: what a repository's Dockerfiles and git remote say
(`dockerfiles`, `remote`), the spec and noxfile written from them (`render`), and what writing
them would change (`changes`). The command (`pipeline.commands.init`) reads and writes the files.
"""
