"""What DingTalk would show for a message body, as HTML: for the console's playground and the
simulator's page.

Pure and self-contained (it imports nothing else of the bridge), so both the daemon's console
and the bundled simulator use it. Every value in the HTML is escaped or checked (safe.py); the
markdown is DingTalk's subset (markdown.py); mentions follow the reference's rules (mentions.py).
Nothing is fetched: images are shown by the reader's browser, lazily and without a referrer.
"""

from bridge.chatview.notice import app_robot_view, card_view, notice_view
from bridge.chatview.robot import robot_view
from bridge.chatview.style import stylesheet
from bridge.chatview.view import ChatView

__all__ = ["ChatView", "app_robot_view", "card_view", "notice_view", "robot_view", "stylesheet"]
