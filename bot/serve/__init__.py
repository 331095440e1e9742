"""``citebot serve``: the HTTP front end (an API, a page to ask from, health and metrics), as thin over ``index`` as the
terminal and Telegram front ends."""
