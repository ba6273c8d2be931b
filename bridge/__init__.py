"""dingtalk-bridge: forward alerts into DingTalk group robots and work notifications."""

__version__ = "0.1.0"
