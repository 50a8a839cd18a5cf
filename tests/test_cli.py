"""The command line: commands run, and bad input gives a message and an exit code, not a traceback."""


def test_help_lists_commands(run_cli):
    result = run_cli("--help")
    assert result.returncode == 0
    assert "bench" in result.stdout


def test_bench_small_config_reports_tokens_per_second(run_cli):
    result = run_cli("bench", "--configs", "small", "--steps", "2", "--no-torch")
    assert result.returncode == 0, result.stderr
    assert "tokens/s" in result.stdout and "peak memory" in result.stdout
    assert "Traceback" not in result.stderr


def test_bad_flag_value_is_a_clear_error(run_cli):
    result = run_cli("bench", "--steps", "0", "--no-torch")
    assert result.returncode != 0
    assert "--steps must be at least 1" in result.stderr
    assert "Traceback" not in result.stderr
