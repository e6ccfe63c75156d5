from tests.harness import Harness


def test_declare_posts_notification(bot: Harness) -> None:
    r = bot.slash("/incident", "sev1 checkout 500s")
    assert r.status_code == 200, r.text
    assert "INC-1" in r.json()["text"]
    bot.deliver()
    posts = bot.posts("C0WARROOM")
    assert posts[0]["text"].startswith("INCIDENT [Critical]")
