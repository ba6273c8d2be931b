"""From prometheus-webhook-dingtalk (timonwong's Go bridge) to a dingtalk-bridge config: what its
Go templates name (`gotemplates`), the conversion (`convert`) and the commented YAML written
(`render`). All pure; the command is `bridge/cli/importpwd.py`."""
