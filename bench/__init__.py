"""jitbot's benchmark suite: `python -m bench` measures each figure of issue 4 against a baseline taken in the same run."""
