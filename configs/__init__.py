"""One config file per model or experiment: `get_config(arg)`, run with --config=configs/<file>.py[:variant]."""
