"""sympow-cli against a real server: generate, chat, sessions and tokenize as a user types them."""
import os
import re
import subprocess

from conftest import BUILD, MODEL

CLI = os.path.join(BUILD, "clients", "cli", "sympow-cli")


def cli(server, *args, stdin=None):
    result = subprocess.run([CLI, *args, "--server", server.address], input=stdin, capture_output=True, text=True,
                            timeout=120)
    return result.returncode, result.stdout, result.stderr


def test_generate_streams_from_the_server_like_local_generation(server):
    flags = ("--prompt", "And God said", "--max_new_tokens", "16", "--seed", "4", "--ignore_eos")
    code, remote, err = cli(server, "generate", *flags)
    assert code == 0, err
    assert "tokens/s" in err
    local = subprocess.run([CLI, "generate", "--model", MODEL, *flags],
                           capture_output=True, text=True, check=True).stdout
    assert remote == local


def test_sessions_lifecycle(server):
    code, out, err = cli(server, "sessions", "create", "--prompt", "In the beginning")
    assert code == 0, err
    session = out.split()[0]
    assert re.search(r"tokens=3\b", out)
    code, out, _ = cli(server, "generate", "--session", session, "--prompt", " God", "--max_new_tokens", "4",
                       "--ignore_eos")
    assert code == 0
    assert f"tokens=8" in cli(server, "sessions", "show", session)[1]
    code, out, _ = cli(server, "sessions", "fork", session)
    fork = out.split()[0]
    assert code == 0 and fork != session and "tokens=8" in out
    listed = cli(server, "sessions", "list")[1]
    assert session in listed and fork in listed
    assert cli(server, "sessions", "delete", fork)[0] == 0
    code, _, err = cli(server, "sessions", "show", fork)
    assert code == 1 and "does not exist" in err
    code, _, err = cli(server, "sessions", "rename", session)
    assert code == 1 and "unknown sessions action" in err


def test_chat_keeps_one_session_across_turns(server):
    code, out, err = cli(server, "chat", "--max_new_tokens", "5", "--ignore_eos", "--seed", "2",
                         stdin="Hello there\nAnd then\n/quit\n")
    assert code == 0, err
    session = re.search(r"resume with: sympow-cli chat --session (\S+)", err).group(1)
    assert err.count("tokens/s") == 2
    show = cli(server, "sessions", "show", session)[1]
    held = int(re.search(r"tokens=(\d+)", show).group(1))
    assert held >= 2 * 5 + 4  # both turns' input and output are in the state


def test_tokenize_and_flags_after_or_before_the_command(server):
    code, out, _ = cli(server, "tokenize", "In the beginning")
    assert code == 0 and len(out.splitlines()) >= 2
    before = subprocess.run([CLI, "--server", server.address, "tokenize", "In the beginning"], capture_output=True,
                            text=True).stdout
    assert before == out


def test_unreachable_server_is_one_line_error():
    result = subprocess.run([CLI, "generate", "--prompt", "x", "--server", "127.0.0.1:1"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_health_exits_zero_only_when_serving(server):
    code, out, _ = cli(server, "health")
    assert (code, out.strip()) == (0, "SERVING")
    closed = subprocess.run([CLI, "health", "--server", "127.0.0.1:1"], capture_output=True, text=True,
                            timeout=60)
    assert closed.returncode == 1 and "health:" in closed.stderr


def test_sessions_create_takes_a_chosen_id(server):
    code, out, err = cli(server, "sessions", "create", "my-chat-7")
    assert code == 0, err
    assert out.split()[0] == "my-chat-7"
    code, _, err = cli(server, "sessions", "create", "my-chat-7")
    assert code != 0 and "already exists" in err
    assert cli(server, "sessions", "delete", "my-chat-7")[0] == 0


def test_append_adds_a_file_to_a_session(server, tmp_path):
    session = cli(server, "sessions", "create")[1].split()[0]
    document = tmp_path / "doc.txt"
    document.write_text("In the beginning God created the heaven and the earth. " * 20)
    code, out, err = cli(server, "append", "--session", session, "--file", str(document))
    assert code == 0, err
    held = int(out.strip())
    assert held > 100 and f"tokens={held}" in cli(server, "sessions", "show", session)[1]
    code, out, _ = cli(server, "append", "--session", session, "--prompt", " And")
    assert code == 0 and int(out.strip()) == held + 1
    code, _, err = cli(server, "append", "--session", session, "--file", str(tmp_path / "missing.txt"))
    assert code == 1 and "--file" in err
    code, _, err = cli(server, "append", "--session", "no-such-session", "--prompt", "x")
    assert code == 1 and "no-such-session" in err
