"""The preferences every session's Firefox profile starts with (its user.js)."""

from __future__ import annotations

FIREFOX_PREFS: dict[str, bool | int | str] = {
    # first run, default browser, welcome and what's-new pages
    "browser.shell.checkDefaultBrowser": False,
    "browser.aboutwelcome.enabled": False,
    "trailhead.firstrun.didSeeAboutWelcome": True,
    "browser.startup.homepage_override.mstone": "ignore",
    "startup.homepage_welcome_url": "",
    "startup.homepage_welcome_url.additional": "",
    "startup.homepage_override_url": "",
    "browser.startup.upgradeDialog.enabled": False,
    "browser.aboutConfig.showWarning": False,
    "browser.rights.3.shown": True,
    "browser.startup.homepage": "about:blank",
    "browser.newtabpage.enabled": False,
    # Restore the previous tabs silently (a desktop that comes back after a server restart
    # keeps its tabs), never via the about:sessionrestore prompt or the safe-mode dialog.
    "browser.startup.page": 3,
    "browser.sessionstore.resume_from_crash": True,
    "browser.sessionstore.max_resumed_crashes": -1,
    "toolkit.startup.max_resumed_crashes": -1,
    "browser.tabs.warnOnClose": False,
    "browser.warnOnQuit": False,
    # telemetry and data reporting
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.policy.dataSubmissionPolicyBypassNotification": True,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.archive.enabled": False,
    "toolkit.telemetry.server": "data:,",
    "toolkit.telemetry.newProfilePing.enabled": False,
    "toolkit.telemetry.shutdownPingSender.enabled": False,
    "toolkit.telemetry.firstShutdownPing.enabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "browser.newtabpage.activity-stream.feeds.telemetry": False,
    "browser.newtabpage.activity-stream.telemetry": False,
    "browser.crashReports.unsubmittedCheck.autoSubmit2": False,
    "app.normandy.enabled": False,
    "app.shield.optoutstudies.enabled": False,
    # updates
    "app.update.auto": False,
    "app.update.checkInstallTime": False,
    "extensions.update.enabled": False,
    # downloads land in ~/Downloads without a dialog
    "browser.download.folderList": 1,
    "browser.download.useDownloadDir": True,
    # memory: one content process instead of one per site saves ~30 MB per idle session;
    # the session is a single-user sandbox already, so site isolation buys little here
    "fission.autostart": False,
    "dom.ipc.processCount": 1,
    "dom.ipc.processPrelaunch.enabled": False,
    # built-in extensions in the parent instead of their own process (bench/density.py
    # --prefs: -16 MiB of ~330 per session with Firefox up; other candidates paid nothing
    # beyond the noise)
    "extensions.webextensions.remote": False,
    # three helper processes fewer (10 -> 7 per session): networking in the parent (no socket
    # process), media decoding in the sandboxed content process (no RDD process), content
    # processes started directly (no fork server). bench/density.py --prefs: the other
    # candidates (JS nursery and empty GC chunks, WebRender threads, tiles and compositor)
    # left the parent's ~185 MiB of private memory where it was.
    "network.process.enabled": False,
    "media.rdd-process.enabled": False,
    "dom.ipc.forkserver.enable": False,
    # No utility process for opaque response blocking's JavaScript validator (bench/density.py
    # --prefs, 10 sessions: 7 processes -> 6, -21 MiB per session of ~218 with Firefox up,
    # part of it noise). ORB keeps a site's private responses out of another site's content
    # process; without site isolation (above) they share one anyway.
    "browser.opaqueResponseBlocking.javascriptValidator": False,
    # Nothing kept running that a blank page does not use (bench/density.py --prefs, 10
    # sessions, MiB per session with Firefox up):
    # - the privileged about: process (about:newtab, about:home, both off here) is not kept
    #   alive once it hosts no tab: one process fewer, 142.8 against 159.4. Web pages get a
    #   web content process on their first load, as they did;
    # - the new tab page's feeds (top sites, places queries and a ranking worker, remote
    #   content) do not start with the browser; the page itself is off (above): 138.2
    #   against 143.0 with them started (both runs with the process above not kept).
    "dom.ipc.keepProcessesAlive.privilegedabout": 0,
    "browser.newtabpage.activity-stream.testing.shouldInitializeFeeds": False,
    "browser.newtabpage.activity-stream.feeds.system.topsites": False,
    # background services that only phone home
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "extensions.pocket.enabled": False,
    "browser.search.update": False,
    "browser.discovery.enabled": False,
    "dom.push.connection.enabled": False,
}


def firefox_user_js() -> str:
    def literal(value: bool | int | str) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [f'user_pref("{name}", {literal(v)});' for name, v in FIREFOX_PREFS.items()]
    header = "// Written by computer-use: every session starts from this profile."
    return "\n".join([header, *lines, ""])
