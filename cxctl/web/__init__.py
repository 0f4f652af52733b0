"""The web side, served by `cxctl serve`: the survey page, one-click scores and one-click unsubscribe.

survey.py knows invitations, questions and answers (no HTTP); texts.py holds the page wording in French
and English; app.py is the Starlette application (routes, limits, security headers); server.py runs it
under uvicorn with tokens redacted from the access log.
"""
