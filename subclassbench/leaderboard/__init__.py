"""Submissions and the leaderboard built from them.

- :mod:`~subclassbench.leaderboard.submissions`: submission folders: submit, validate, verify.
- :mod:`~subclassbench.leaderboard.board`: per-task tables (markdown, JSON), figures, the changelog.
- :mod:`~subclassbench.leaderboard.cells`: how one number is written, for the tables and the site alike.
- :mod:`~subclassbench.leaderboard.site`: the static site (``site_assets/`` is its page).
"""
