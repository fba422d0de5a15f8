"""The ``vllm-ranker`` command: ``main.py`` dispatches to one module per subcommand; ``_options.py`` holds the
flags several subcommands share. Subcommands never import each other."""
