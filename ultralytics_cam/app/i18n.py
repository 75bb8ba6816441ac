"""The app's words in English, Simplified Chinese and Traditional Chinese (``yolo-cam app lang=...``).

Messages that come from Ultralytics or from the CAM engine (a bad value, a missing file) stay in English, as they
are in the terminal; every label, hint, status line and piece of advice the app writes itself is here.
"""

from __future__ import annotations

__all__ = ["LANGUAGES", "TEXTS", "check_lang", "translate"]

#: Language codes ``lang=`` accepts, with the name each language calls itself.
LANGUAGES = {"en": "English", "zh-Hans": "简体中文", "zh-Hant": "繁體中文"}

TEXTS: dict[str, dict[str, str]] = {
    "title": {
        "en": "yolo-cam: heatmaps for a folder of images",
        "zh-Hans": "yolo-cam：为整个文件夹的图片生成热力图",
        "zh-Hant": "yolo-cam：為整個資料夾的圖片產生熱力圖",
    },
    "intro": {
        "en": "Every run is a `yolo-cam predict` run: one folder per image with `detection.png` and `heatmap.png`, "
        "and `summary.json` for the run. Existing folders are never overwritten (cam, cam-2, ...).",
        "zh-Hans": "每次运行都等同于一次 `yolo-cam predict`：每张图片一个文件夹，内含 `detection.png` 和 "
        "`heatmap.png`，整个运行另有 `summary.json`。已有文件夹绝不会被覆盖（cam、cam-2……）。",
        "zh-Hant": "每次執行都等同於一次 `yolo-cam predict`：每張圖片一個資料夾，內含 `detection.png` 和 "
        "`heatmap.png`，整個執行另有 `summary.json`。既有資料夾絕不會被覆寫（cam、cam-2……）。",
    },
    "inputs": {"en": "Input and output", "zh-Hans": "输入与输出", "zh-Hant": "輸入與輸出"},
    "source": {
        "en": "Input image folder (or an image file) on this computer",
        "zh-Hans": "本机上的输入图片文件夹（或单张图片）",
        "zh-Hant": "本機上的輸入圖片資料夾（或單張圖片）",
    },
    "browse": {
        "en": "Browse (tick any image to use its folder as the input)",
        "zh-Hans": "浏览（勾选任意一张图片，即以其所在文件夹为输入）",
        "zh-Hant": "瀏覽（勾選任意一張圖片，即以其所在資料夾為輸入）",
    },
    "uploads": {
        "en": "…or upload images (used instead of the folder when given)",
        "zh-Hans": "……或上传图片（上传后优先于文件夹）",
        "zh-Hant": "……或上傳圖片（上傳後優先於資料夾）",
    },
    "project": {
        "en": "Output folder (empty: Ultralytics' runs/<task>)",
        "zh-Hans": "输出文件夹（留空：Ultralytics 默认的 runs/<task>）",
        "zh-Hant": "輸出資料夾（留空：Ultralytics 預設的 runs/<task>）",
    },
    "model": {
        "en": "Weights file (.pt) on this computer",
        "zh-Hans": "本机上的权重文件（.pt）",
        "zh-Hant": "本機上的權重檔（.pt）",
    },
    "model_upload": {"en": "…or upload a .pt file", "zh-Hans": "……或上传 .pt 文件", "zh-Hant": "……或上傳 .pt 檔"},
    "task": {
        "en": "Task (read from the weights)",
        "zh-Hans": "任务（从权重中读取）",
        "zh-Hant": "任務（從權重中讀取）",
    },
    "options": {"en": "CAM options", "zh-Hans": "CAM 选项", "zh-Hant": "CAM 選項"},
    "method": {"en": "CAM method", "zh-Hans": "CAM 方法", "zh-Hant": "CAM 方法"},
    "device": {"en": "Device", "zh-Hans": "设备", "zh-Hant": "裝置"},
    "layers": {
        "en": "Target layers ('auto' = the layers marked auto below, usually right)",
        "zh-Hans": "目标层（'auto' = 下表中标为 auto 的层，通常即可）",
        "zh-Hant": "目標層（'auto' = 下表中標為 auto 的層，通常即可）",
    },
    "layer_table": {
        "en": "Layers of this model (output shape at the image size)",
        "zh-Hans": "该模型的各层（按所选图片尺寸的输出形状）",
        "zh-Hant": "該模型的各層（依所選圖片尺寸的輸出形狀）",
    },
    "conf": {
        "en": "Confidence threshold (predictions below it are not explained)",
        "zh-Hans": "置信度阈值（低于它的预测不解释）",
        "zh-Hant": "信心閾值（低於它的預測不解釋）",
    },
    "max_det": {
        "en": "Predictions explained per image at most (max_det)",
        "zh-Hans": "每张图最多解释的预测数（max_det）",
        "zh-Hant": "每張圖最多解釋的預測數（max_det）",
    },
    "max_det_info": {
        "en": "Replaces the old 'ratio': the top max_det predictions by confidence are kept and each gets its map.",
        "zh-Hans": "取代旧工具的“ratio”：按置信度保留前 max_det 个预测，每个预测都有自己的热力图。",
        "zh-Hant": "取代舊工具的「ratio」：依信心保留前 max_det 個預測，每個預測都有自己的熱力圖。",
    },
    "imgsz": {"en": "Image size (imgsz)", "zh-Hans": "图片尺寸（imgsz）", "zh-Hant": "圖片尺寸（imgsz）"},
    "show_boxes": {
        "en": "Draw the predictions on the heatmap",
        "zh-Hans": "在热力图上绘制预测框",
        "zh-Hant": "在熱力圖上繪製預測框",
    },
    "renormalize": {
        "en": "Keep the heatmap inside the boxes (renormalize)",
        "zh-Hans": "热力图只保留在框内（renormalize）",
        "zh-Hant": "熱力圖只保留在框內（renormalize）",
    },
    "start": {"en": "Start", "zh-Hans": "开始", "zh-Hant": "開始"},
    "stop": {"en": "Stop", "zh-Hans": "停止", "zh-Hant": "停止"},
    "gallery": {
        "en": "Finished heatmaps (click one to see it beside detection.png)",
        "zh-Hans": "已完成的热力图（点击可与 detection.png 并排查看）",
        "zh-Hant": "已完成的熱力圖（點選可與 detection.png 並排檢視）",
    },
    "detection": {"en": "detection.png", "zh-Hans": "detection.png", "zh-Hant": "detection.png"},
    "heatmap": {"en": "heatmap.png", "zh-Hans": "heatmap.png", "zh-Hant": "heatmap.png"},
    "image_errors": {
        "en": "Images that could not be explained",
        "zh-Hans": "无法处理的图片",
        "zh-Hant": "無法處理的圖片",
    },
    "no_image_errors": {"en": "None.", "zh-Hans": "无。", "zh-Hant": "無。"},
    # status line
    "status_idle": {
        "en": "Ready. Fill in the form and press Start.",
        "zh-Hans": "就绪。填写表单后点击“开始”。",
        "zh-Hant": "就緒。填寫表單後點選「開始」。",
    },
    "status_starting": {
        "en": "Loading the model…",
        "zh-Hans": "正在加载模型……",
        "zh-Hant": "正在載入模型……",
    },
    "status_running": {"en": "Running", "zh-Hans": "运行中", "zh-Hant": "執行中"},
    "status_stopping": {
        "en": "Stopping after the current image…",
        "zh-Hans": "当前图片完成后停止……",
        "zh-Hant": "目前圖片完成後停止……",
    },
    "status_completed": {"en": "Finished", "zh-Hans": "已完成", "zh-Hant": "已完成"},
    "status_interrupted": {
        "en": "Stopped; every finished image is kept",
        "zh-Hans": "已停止；已完成的图片全部保留",
        "zh-Hant": "已停止；已完成的圖片全部保留",
    },
    "status_failed": {"en": "The run failed", "zh-Hans": "运行失败", "zh-Hant": "執行失敗"},
    "images": {"en": "images", "zh-Hans": "张图片", "zh-Hant": "張圖片"},
    "per_second": {"en": "images/s", "zh-Hans": "张/秒", "zh-Hant": "張/秒"},
    "eta": {"en": "ETA", "zh-Hans": "剩余时间", "zh-Hant": "剩餘時間"},
    "current": {"en": "Now", "zh-Hans": "当前", "zh-Hant": "目前"},
    "output": {"en": "Output", "zh-Hans": "输出", "zh-Hant": "輸出"},
    "report": {"en": "Open the report", "zh-Hans": "打开报告", "zh-Hant": "開啟報告"},
    "summary": {"en": "summary.json", "zh-Hans": "summary.json", "zh-Hant": "summary.json"},
    "advice": {"en": "What to do", "zh-Hans": "建议", "zh-Hant": "建議"},
    "busy": {
        "en": "A run is already in progress. Wait for it to finish, or press Stop first.",
        "zh-Hans": "已有运行正在进行。请等待其完成，或先点击“停止”。",
        "zh-Hant": "已有執行正在進行。請等待其完成，或先點選「停止」。",
    },
    "form_error": {
        "en": "Please check the form",
        "zh-Hans": "请检查表单",
        "zh-Hant": "請檢查表單",
    },
    "nothing_to_stop": {"en": "No run is in progress.", "zh-Hans": "当前没有运行。", "zh-Hant": "目前沒有執行。"},
    # advice, one per kind of run error (ultralytics_cam.app.runner.RunFailure.kind)
    "advice_weights": {
        "en": "Choose a .pt file saved by Ultralytics (a trained YOLO model such as best.pt). Exported models "
        "(ONNX, TensorRT, ...) have no gradients and cannot be explained.",
        "zh-Hans": "请选择 Ultralytics 保存的 .pt 文件（训练好的 YOLO 模型，例如 best.pt）。导出的模型"
        "（ONNX、TensorRT 等）没有梯度，无法解释。",
        "zh-Hant": "請選擇 Ultralytics 儲存的 .pt 檔（訓練好的 YOLO 模型，例如 best.pt）。匯出的模型"
        "（ONNX、TensorRT 等）沒有梯度，無法解釋。",
    },
    "advice_cuda_oom": {
        "en": "The GPU ran out of memory. Choose the cpu device, or a smaller image size (for example 320), "
        "or a lower max_det.",
        "zh-Hans": "GPU 显存不足。请选择 cpu 设备，或更小的图片尺寸（例如 320），或更小的 max_det。",
        "zh-Hant": "GPU 記憶體不足。請選擇 cpu 裝置，或更小的圖片尺寸（例如 320），或更小的 max_det。",
    },
    "advice_device": {
        "en": "This device is not available here. Choose cpu, or one of the GPUs in the list.",
        "zh-Hans": "此设备在本机不可用。请选择 cpu，或列表中的某块 GPU。",
        "zh-Hant": "此裝置在本機不可用。請選擇 cpu，或清單中的某張 GPU。",
    },
    "advice_options": {
        "en": "Change the option named in the message (method, layers, ...) and press Start again.",
        "zh-Hans": "请修改消息中提到的选项（方法、层等）后重新点击“开始”。",
        "zh-Hant": "請修改訊息中提到的選項（方法、層等）後重新點選「開始」。",
    },
    "advice_source": {
        "en": "None of the inputs could be read as an image. Check the folder (jpg, png, bmp, webp, tif, ...).",
        "zh-Hans": "没有任何输入能作为图片读取。请检查文件夹（jpg、png、bmp、webp、tif 等）。",
        "zh-Hant": "沒有任何輸入能作為圖片讀取。請檢查資料夾（jpg、png、bmp、webp、tif 等）。",
    },
    "advice_other": {
        "en": "The terminal that runs yolo-cam app shows the details. Finished images are kept in the output folder.",
        "zh-Hans": "运行 yolo-cam app 的终端里有详细信息。已完成的图片保留在输出文件夹中。",
        "zh-Hant": "執行 yolo-cam app 的終端機中有詳細資訊。已完成的圖片保留在輸出資料夾中。",
    },
}


def check_lang(lang: str) -> str:
    """Return ``lang`` if the app speaks it.

    Raises:
        ValueError: it is not one of :data:`LANGUAGES` (the message lists them).
    """
    if lang not in LANGUAGES:
        choices = ", ".join(f"{code} ({name})" for code, name in LANGUAGES.items())
        raise ValueError(f"lang={lang!r} is not a language of the app. Use one of: {choices}.")
    return lang


def translate(key: str, lang: str = "en") -> str:
    """Return the text ``key`` in ``lang`` (English when a translation is missing)."""
    entry = TEXTS[key]
    return entry.get(lang) or entry["en"]
