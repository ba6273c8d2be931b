"""The CSS the chat bubbles need: DingTalk-like, phone-width friendly, nothing fetched.

Every class is prefixed `dt-` (or is `mention`), so a page can include this next to its own
styles. The robot's avatar is drawn with CSS (a blue circle with a robot face), not an image.
"""

from __future__ import annotations

_CSS = """
.dt-msg{display:flex;align-items:flex-start;gap:8px;margin:10px 0;max-width:100%;
 font:14px/1.5 -apple-system,BlinkMacSystemFont,"PingFang SC","Microsoft YaHei",system-ui,
 sans-serif; color:#171a1d}
.dt-avatar{flex:none;width:36px;height:36px;border-radius:50%;background:#3296fa;position:relative}
.dt-avatar::before{content:"";position:absolute;left:9px;top:11px;width:18px;height:13px;
 border-radius:4px;background:#fff}
.dt-avatar::after{content:"";position:absolute;left:13px;top:15px;width:3px;height:3px;
 border-radius:50%;background:#3296fa;box-shadow:7px 0 0 #3296fa}
.dt-main{min-width:0;flex:1 1 auto;max-width:min(560px,calc(100% - 44px))}
.dt-name{font-size:12px;color:#747677;margin:0 0 3px 2px}
.dt-bubble{display:inline-block;max-width:100%;box-sizing:border-box;background:#fff;
 border-radius:0 8px 8px 8px;padding:9px 12px;box-shadow:0 1px 2px rgba(0,0,0,.08);
 overflow-wrap:anywhere;word-break:break-word}
.dt-text{white-space:pre-wrap}
.dt-md>:first-child{margin-top:0}.dt-md>:last-child{margin-bottom:0}
.dt-md p{margin:.4em 0}
.dt-md h1,.dt-md h2,.dt-md h3,.dt-md h4,.dt-md h5,.dt-md h6{margin:.5em 0 .3em;line-height:1.3}
.dt-md h1{font-size:1.5em}.dt-md h2{font-size:1.35em}.dt-md h3{font-size:1.2em}
.dt-md h4{font-size:1.08em}.dt-md h5{font-size:1em}.dt-md h6{font-size:.9em;color:#747677}
.dt-md blockquote{margin:.4em 0;padding:0 0 0 10px;border-left:3px solid #d8dadc;color:#5c5e61}
.dt-md ul,.dt-md ol{margin:.3em 0;padding-left:1.4em}
.dt-md a,.dt-bubble a.dt-btn{color:#3296fa;text-decoration:none}
.dt-md img{max-width:100%;height:auto;border-radius:4px;display:block;margin:.3em 0}
.dt-md hr{border:0;border-top:1px solid #e5e6e8;margin:.6em 0}
.dt-md code{background:#f2f3f5;border-radius:3px;padding:0 3px;font-size:.92em}
.dt-md table{border-collapse:collapse;margin:.4em 0;display:block;overflow-x:auto;max-width:100%}
.dt-md th,.dt-md td{border:1px solid #e5e6e8;padding:3px 8px}
.dt-md th{background:#f7f8fa}
.dt-al-center{text-align:center}.dt-al-right{text-align:right}.dt-al-left{text-align:left}
.dt-code,.dt-json{white-space:pre-wrap;background:#f7f8fa;border-radius:4px;padding:6px 8px;
 margin:.4em 0;font:12px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.mention.pinged{color:#3296fa;font-weight:600}
.dt-noimg,.dt-media{color:#a2a3a5}
.dt-kind-link .dt-bubble,.dt-kind-sampleLink .dt-bubble,.dt-kind-feedCard .dt-bubble,
.dt-kind-actionCard .dt-bubble,.dt-kind-action_card .dt-bubble,.dt-kind-oa .dt-bubble,
.dt-kind-card .dt-bubble{width:100%;max-width:360px}
[class*="dt-kind-sampleActionCard"] .dt-bubble{width:100%;max-width:360px}
a.dt-link,div.dt-link{display:block;color:inherit;text-decoration:none}
.dt-link-title{font-weight:600;margin-bottom:4px}
.dt-link-row{display:flex;gap:8px;align-items:flex-start}
.dt-link-text{flex:1;color:#5c5e61;font-size:13px;display:-webkit-box;-webkit-line-clamp:3;
 -webkit-box-orient:vertical;overflow:hidden}
.dt-link-pic{flex:none;width:52px;height:52px;object-fit:cover;border-radius:4px}
.dt-btns{display:flex;margin:8px -12px -9px;border-top:1px solid #eeeff0}
.dt-btns-v{flex-direction:column}
.dt-btns-h>.dt-btn{flex:1}
.dt-btns-h>.dt-btn+.dt-btn{border-left:1px solid #eeeff0}
.dt-btns-v>.dt-btn+.dt-btn{border-top:1px solid #eeeff0}
.dt-btn{display:block;text-align:center;padding:8px 6px;color:#3296fa;text-decoration:none}
div.dt-btn{color:#a2a3a5}
.dt-feed{margin:-9px -12px}
.dt-feed-first{display:block;position:relative;min-height:44px;text-decoration:none;color:inherit}
.dt-feed-first .dt-feed-pic{display:block;width:100%;max-height:180px;object-fit:cover;
 border-radius:0 8px 0 0}
.dt-feed-first .dt-feed-title{display:block;padding:8px 12px;font-weight:600}
.dt-feed-row{display:flex;align-items:center;gap:8px;padding:8px 12px;border-top:1px solid #eeeff0;
 text-decoration:none;color:inherit}
.dt-feed-row .dt-feed-title{flex:1}
.dt-feed-row .dt-feed-pic{width:40px;height:40px;object-fit:cover;border-radius:4px}
a.dt-oa,div.dt-oa{display:block;color:inherit;text-decoration:none;margin:-9px -12px;
 overflow:hidden;border-radius:0 8px 8px 8px}
.dt-oa>div{padding:0 12px}
.dt-oa-head{background:#3296fa;color:#fff;padding:6px 12px!important}
.dt-oa-title{font-weight:600;margin-top:6px}
.dt-oa-form span{color:#747677}
.dt-oa-rich{font-size:1.6em;font-weight:600}.dt-oa-rich span{font-size:.55em;margin-left:2px}
.dt-oa-author{color:#a2a3a5;font-size:12px;padding-bottom:8px!important}
.dt-oa-pic{max-width:100%;display:block;margin:4px 12px}
.dt-card-head{font-weight:600;margin-bottom:4px}
.dt-card-data th{text-align:left;color:#747677;font-weight:400;padding-right:10px;
 vertical-align:top}
@media (max-width:480px){.dt-main{max-width:calc(100% - 44px)}.dt-msg{font-size:15px}}
"""


def stylesheet() -> str:
    """The CSS the fragments of this package need (bundled: no fonts or URLs fetched)."""
    return _CSS
