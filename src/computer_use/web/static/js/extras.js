// The session's files panel, drag-and-drop uploads, the recording player and the trajectory
// export / offline viewer, wired to the page. app.js calls show() with the selected session.
import { $ } from "./dom.js";
import { FilesPanel, filesApi, installDropTarget, saveBlob } from "./files.js";
import { RecordingPlayer, TrajectoryViewer } from "./replay.js";

export function installExtras({ imageSrc }) {
  let session = null;
  const files = new FilesPanel({
    panel: $("files-panel"),
    list: $("files-list"),
    path: $("files-path"),
    note: $("files-note"),
    uploadButton: $("files-upload"),
    input: $("files-input"),
    refreshButton: $("files-refresh"),
  });
  const player = new RecordingPlayer(
    {
      dialog: $("recording-dialog"),
      video: $("recording-video"),
      markers: $("recording-markers"),
      shot: $("recording-shot"),
      text: $("recording-text"),
      status: $("recording-status"),
    },
    { imageSrc },
  );
  const viewer = new TrajectoryViewer({
    dialog: $("trajectory-dialog"),
    title: $("trajectory-title"),
    canvas: $("trajectory-canvas"),
    text: $("trajectory-text"),
    position: $("trajectory-position"),
    prev: $("trajectory-prev"),
    next: $("trajectory-next"),
  });
  const recordingButton = $("recording-button");
  const trajectoryInput = $("trajectory-input");
  const trajectoryError = $("trajectory-error");

  installDropTarget($("desktop-panel"),
    $("drop-overlay"), (dropped) => {
      if (session && session.status !== "expired") files.upload(dropped);
    });
  recordingButton.addEventListener("click", () => session && player.open(session.id));
  $("trajectory-button").addEventListener("click", async () => {
    if (!session) return;
    try {
      saveBlob(await filesApi.trajectory(session.id), `trajectory-${session.id}.zip`);
    } catch (error) {
      $("files-note").textContent = `Could not export the trajectory: ${error.message}`;
    }
  });
  $("trajectory-open").addEventListener("click", () => trajectoryInput.click());
  trajectoryInput.addEventListener("change", async () => {
    const [file] = trajectoryInput.files;
    trajectoryInput.value = "";
    if (!file) return;
    trajectoryError.hidden = true;
    try {
      await viewer.open(file);
    } catch (error) {
      trajectoryError.textContent = `Could not open ${file.name}: ${error.message}`;
      trajectoryError.hidden = false;
    }
  });

  return {
    show(next) {
      session = next;
      files.show(next);
      recordingButton.hidden = !(next && next.recording);
    },
    refreshFiles: () => files.refresh(),
  };
}
