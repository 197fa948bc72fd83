// Interface text in English and Chinese; the language comes from the user's choice, else the browser.

const STORAGE_KEY = "kbchat.lang";

const en = {
  "nav.chat": "Chat", "nav.kbs": "Knowledge bases", "nav.settings": "Settings",
  "lang.label": "Language",
  "health.ok": "Server is up", "health.bad": "Server unreachable: {message}",
  "auth.title": "API key required", "auth.explain": "This server asks for an API key. It is kept in this browser only.",
  "auth.key": "API key", "auth.submit": "Use key", "auth.forget": "Forget API key",
  "auth.rejected": "The server refused the key: {message}",
  "common.cancel": "Cancel", "common.close": "Close", "common.delete": "Delete", "common.confirmDelete": "Really delete?",
  "common.loading": "Loading…", "common.yes": "yes", "common.no": "no",
  "files.attach": "+ Files", "files.attachHint": "Attach files to this conversation (or drop them here): answers then come from them too.",
  "files.attached": "Attached files", "files.uploading": "uploading {pct}%", "files.progress": "reading files: {done}/{total}",
  "files.mode": "Answers come from: {sources}",
  "summary.make": "Summarize", "summary.again": "Summarize again", "summary.working": "Summarizing…",
  "summary.all": "Summarize all", "summary.allHint": "Summarize every file in the background (kept summaries are reused), then the whole knowledge base.",
  "summary.job": "Summaries", "summary.stop": "Stop", "summary.seconds": "{n} s", "summary.minutes": "{n} min",
  "summary.progress": "{done}/{total} files done; about {time} expected in all",
  "summary.ended.done": "All summaries are made.", "summary.ended.cancelled": "Stopped; the summaries made so far are kept.",
  "summary.ended.failed": "Failed: {message}",
  "summary.file.pending": "waiting", "summary.file.running": "summarizing…", "summary.file.done": "done",
  "summary.file.failed": "failed", "summary.file.cancelled": "stopped",
  "chat.new": "+ New chat", "chat.history": "History", "chat.noHistory": "No conversations yet.",
  "chat.untitled": "Untitled", "chat.plainShort": "plain chat", "chat.delete": "Delete conversation",
  "chat.kbs": "Knowledge bases", "chat.model": "Model", "chat.topk": "Top-k", "chat.threshold": "Threshold",
  "chat.default": "default", "chat.defaultModel": "default",
  "chat.noKb": "None (plain chat)", "chat.noKbs": "No knowledge bases yet.", "chat.createKb": "Create a knowledge base",
  "chat.modeKb": "Answers come from: {kbs}", "chat.modePlain": "Plain chat with the model: no knowledge base is searched.",
  "chat.mode": "Mode", "chat.modeAuto": "Documents", "chat.modeAgent": "Agent (tools)", "chat.modeWeb": "Web search",
  "chat.modeAgentHint": "The agent may use tools ({tools}); its search covers {kbs}.",
  "chat.modeAgentAll": "every knowledge base you may read",
  "chat.modeWebHint": "Answers come from a web search; sources are web pages.",
  "tool.steps": "Tool calls", "tool.running": "running…", "tool.failed": "failed: {error}", "tool.ms": "{ms} ms",
  "chat.placeholder": "Ask a question…", "chat.keys": "Enter sends, Shift+Enter starts a new line.",
  "chat.send": "Send", "chat.stop": "Stop",
  "chat.emptyTitle": "Ask your documents",
  "chat.emptyText": "Pick one or more knowledge bases above and ask a question. Answers cite their sources: click a [n] to see the passage.",
  "chat.emptyNoKb": "You have no knowledge base yet: you can chat with the model directly, or create one and upload files first.",
  "chat.thinking": "Searching and thinking…", "chat.queued": "Waiting for the model: number {n} in line, about {s} s…", "chat.stopped": "Stopped.", "chat.incomplete": "The answer stream ended unexpectedly.",
  "chat.ungrounded": "Not found in the knowledge base: this answer is not based on your documents.",
  "chat.refused": "Declined: the files do not answer this. The closest passages found are below.",
  "chat.fallback": "Not from your files: this answer is the model's own knowledge. Verify it.",
  "cite.closest": "Closest passages found (not used as sources)",
  "chat.ttft": "first token {s}", "chat.total": "total {s}", "chat.tokens": "{n} tokens",
  "chat.historyError": "Could not load the conversations: {message}",
  "chat.openError": "Could not open the conversation: {message}",
  "cite.sources": "Sources", "cite.page": "page {page}", "cite.sheet": "sheet {sheet}", "cite.slide": "slide {slide}",
  "cite.score": "relevance score (0–1)", "cite.kb": "knowledge base: {kb}", "cite.full": "Whole passage",
  "cite.open": "Show source {n}",
  "kb.create": "New knowledge base", "kb.name": "Name", "kb.description": "Description",
  "kb.descriptionHint": "What is in it (optional)", "kb.advanced": "Advanced", "kb.embedder": "Embedder",
  "kb.embedderDefault": "server default", "kb.chunkSize": "Chunk size", "kb.chunkOverlap": "Overlap",
  "kb.createButton": "Create", "kb.created": "Knowledge base “{name}” created.",
  "kb.counts": "{files} {files|file|files} · {chunks} {chunks|chunk|chunks}", "kb.failedCount": "{n} failed", "kb.pendingCount": "{n} pending",
  "kb.none": "No knowledge bases yet.", "kb.loadError": "Could not load the knowledge bases: {message}",
  "kb.pick": "Pick a knowledge base", "kb.pickText": "Choose one on the left to see its files, upload more, or test retrieval.",
  "kb.firstTitle": "Create your first knowledge base",
  "kb.firstText": "Give it a name on the left, then drop your documents in: PDF, Word, Excel, PowerPoint, Markdown, HTML, text and images.",
  "kb.files": "Files", "kb.chunks": "Chunks", "kb.file": "File", "kb.status": "Status", "kb.size": "Size", "kb.updated": "Updated",
  "kb.filesTitle": "Files", "kb.noFiles": "No files yet: drop some above.",
  "kb.dropTitle": "Drop files or folders here", "kb.dropText": "or click to choose several at once",
  "kb.chooseFolder": "Choose a folder",
  "kb.sync": "Sync", "kb.syncHint": "Index new and changed files, forget removed ones",
  "kb.rebuild": "Rebuild", "kb.rebuildHint": "Re-index every file from scratch",
  "kb.delete": "Delete knowledge base", "kb.confirmDelete": "Click again to delete it", "kb.deleteHint": "Deletes the index and its files",
  "kb.deleted": "Knowledge base “{name}” deleted.", "kb.fileDeleted": "“{name}” deleted.",
  "status.indexed": "indexed", "status.failed": "failed", "status.skipped": "skipped", "status.pending": "pending",
  "status.unchanged": "unchanged", "status.removed": "removed",
  "job.upload": "Upload: {n} {n|file|files}", "job.sync": "Sync", "job.rebuild": "Rebuild", "job.preparing": "Starting…",
  "job.uploading": "Uploading… {pct}%", "job.queued": "Waiting for the indexer…", "job.running": "Indexing: {done} of {total} files",
  "job.done": "Done: {indexed} indexed, {failed} failed, {skipped} skipped, {removed} removed",
  "job.failed": "Failed: {message}", "job.replace": "Replace them",
  "search.title": "Retrieval test", "search.placeholder": "Type a question to see which passages are found",
  "search.run": "Search", "search.mode": "Mode", "search.none": "No passage scored above the threshold.",
  "search.mode.hybrid": "hybrid", "search.mode.dense": "dense (vectors)", "search.mode.bm25": "keywords (BM25)",
  "settings.intro": "What this server is configured with. Change settings in kbchat.toml or KBCHAT_* environment variables.",
  "settings.models": "Chat models", "settings.noModels": "No chat model is configured.",
  "settings.modelsError": "Could not load the models: {message}",
  "settings.modelName": "Name", "settings.backend": "Backend", "settings.model": "Model", "settings.baseUrl": "Server URL",
  "settings.batch": "Batch size", "settings.embedder": "Embedder", "settings.answering": "Answering",
  "settings.noHitPolicy": "When nothing is found", "settings.noHitMessage": "Fixed reply",
  "settings.noHit.refuse": "Say that the documents do not contain the answer.",
  "settings.noHit.fallback": "Answer from the model's own knowledge, labelled as such.",
  "settings.noHit.message": "Reply with the fixed message.",
  "settings.defaultModel": "Default model", "settings.temperature": "Temperature", "settings.maxTokens": "Max answer tokens",
  "settings.fusion": "Fusion", "settings.ingest": "Ingestion", "settings.maxFile": "Max file size (MB)", "settings.ocr": "OCR",
  "settings.home": "Data directory", "settings.unknown": "Not reported by the server.",
  "settings.doctor": "Health checks", "settings.rerun": "Run again", "settings.checking": "Checking…",
  "settings.doctorOk": "Everything required works.", "settings.doctorBad": "{n} required check(s) failed.",
  "settings.optional": "optional", "settings.all": "All settings", "settings.showAll": "Show as JSON",
};

const zh = {
  "nav.chat": "对话", "nav.kbs": "知识库", "nav.settings": "设置",
  "lang.label": "语言",
  "health.ok": "服务器正常", "health.bad": "无法连接服务器：{message}",
  "auth.title": "需要 API 密钥", "auth.explain": "此服务器要求提供 API 密钥，密钥只保存在本浏览器中。",
  "auth.key": "API 密钥", "auth.submit": "使用此密钥", "auth.forget": "清除 API 密钥",
  "auth.rejected": "服务器拒绝了该密钥：{message}",
  "common.cancel": "取消", "common.close": "关闭", "common.delete": "删除", "common.confirmDelete": "确认删除？",
  "common.loading": "加载中…", "common.yes": "是", "common.no": "否",
  "files.attach": "+ 文件", "files.attachHint": "把文件添加到本次对话（或拖放到这里）：回答也会依据这些文件。",
  "files.attached": "已添加的文件", "files.uploading": "上传中 {pct}%", "files.progress": "读取文件：{done}/{total}",
  "files.mode": "回答依据：{sources}",
  "summary.make": "生成摘要", "summary.again": "重新生成摘要", "summary.working": "正在生成摘要…",
  "summary.all": "全部生成摘要", "summary.allHint": "在后台为每个文件生成摘要（已有的直接复用），再生成整个知识库的概述。",
  "summary.job": "摘要", "summary.stop": "停止", "summary.seconds": "{n} 秒", "summary.minutes": "{n} 分钟",
  "summary.progress": "已完成 {done}/{total} 个文件；预计共需约 {time}",
  "summary.ended.done": "所有摘要已生成。", "summary.ended.cancelled": "已停止；已生成的摘要会保留。",
  "summary.ended.failed": "失败：{message}",
  "summary.file.pending": "等待中", "summary.file.running": "生成中…", "summary.file.done": "完成",
  "summary.file.failed": "失败", "summary.file.cancelled": "已停止",
  "chat.new": "+ 新对话", "chat.history": "历史对话", "chat.noHistory": "还没有对话。",
  "chat.untitled": "未命名", "chat.plainShort": "普通对话", "chat.delete": "删除对话",
  "chat.kbs": "知识库", "chat.model": "模型", "chat.topk": "Top-k", "chat.threshold": "阈值",
  "chat.default": "默认", "chat.defaultModel": "默认",
  "chat.noKb": "不使用（普通对话）", "chat.noKbs": "还没有知识库。", "chat.createKb": "新建知识库",
  "chat.modeKb": "回答依据：{kbs}", "chat.modePlain": "与模型直接对话：不检索任何知识库。",
  "chat.mode": "模式", "chat.modeAuto": "文档问答", "chat.modeAgent": "智能体（工具）", "chat.modeWeb": "联网搜索",
  "chat.modeAgentHint": "智能体可以使用工具（{tools}），检索范围：{kbs}。",
  "chat.modeAgentAll": "你可读的全部知识库",
  "chat.modeWebHint": "回答来自联网搜索，出处为网页。",
  "tool.steps": "工具调用", "tool.running": "运行中…", "tool.failed": "失败：{error}", "tool.ms": "{ms} 毫秒",
  "chat.placeholder": "输入问题…", "chat.keys": "Enter 发送，Shift+Enter 换行。",
  "chat.send": "发送", "chat.stop": "停止",
  "chat.emptyTitle": "向你的文档提问",
  "chat.emptyText": "在上方选择一个或多个知识库，然后提问。回答会标注出处：点击 [n] 查看原文段落。",
  "chat.emptyNoKb": "还没有知识库：你可以直接与模型对话，或先新建知识库并上传文件。",
  "chat.thinking": "正在检索和思考…", "chat.queued": "正在排队等待模型：第 {n} 位，约 {s} 秒…", "chat.stopped": "已停止。", "chat.incomplete": "回答流意外中断。",
  "chat.ungrounded": "知识库中没有找到相关内容：此回答并非基于你的文档。",
  "chat.refused": "已拒答：资料中没有这个问题的答案。下面是找到的最接近的段落。",
  "chat.fallback": "并非来自你的文件：此回答是模型自身的知识，请自行核实。",
  "cite.closest": "找到的最接近的段落（未作为出处）",
  "chat.ttft": "首字 {s}", "chat.total": "总计 {s}", "chat.tokens": "{n} 个词元",
  "chat.historyError": "无法加载对话列表：{message}",
  "chat.openError": "无法打开该对话：{message}",
  "cite.sources": "出处", "cite.page": "第 {page} 页", "cite.sheet": "工作表 {sheet}", "cite.slide": "第 {slide} 张幻灯片",
  "cite.score": "相关度（0–1）", "cite.kb": "知识库：{kb}", "cite.full": "完整段落",
  "cite.open": "查看出处 {n}",
  "kb.create": "新建知识库", "kb.name": "名称", "kb.description": "描述",
  "kb.descriptionHint": "内容简介（可选）", "kb.advanced": "高级选项", "kb.embedder": "向量模型",
  "kb.embedderDefault": "服务器默认", "kb.chunkSize": "分块大小", "kb.chunkOverlap": "重叠",
  "kb.createButton": "创建", "kb.created": "已创建知识库「{name}」。",
  "kb.counts": "{files} 个文件 · {chunks} 个分块", "kb.failedCount": "{n} 个失败", "kb.pendingCount": "{n} 个待处理",
  "kb.none": "还没有知识库。", "kb.loadError": "无法加载知识库：{message}",
  "kb.pick": "选择一个知识库", "kb.pickText": "在左侧选择知识库，查看文件、上传更多文件或测试检索。",
  "kb.firstTitle": "新建你的第一个知识库",
  "kb.firstText": "在左侧输入名称，然后拖入文档：支持 PDF、Word、Excel、PowerPoint、Markdown、HTML、文本和图片。",
  "kb.files": "文件", "kb.chunks": "分块", "kb.file": "文件", "kb.status": "状态", "kb.size": "大小", "kb.updated": "更新时间",
  "kb.filesTitle": "文件", "kb.noFiles": "还没有文件：请拖入上方区域。",
  "kb.dropTitle": "将文件或文件夹拖到这里", "kb.dropText": "或点击选择（可多选）",
  "kb.chooseFolder": "选择文件夹",
  "kb.sync": "同步", "kb.syncHint": "索引新增和修改的文件，移除已删除的文件",
  "kb.rebuild": "重建", "kb.rebuildHint": "从头重新索引所有文件",
  "kb.delete": "删除知识库", "kb.confirmDelete": "再次点击以删除", "kb.deleteHint": "删除索引及其文件",
  "kb.deleted": "已删除知识库「{name}」。", "kb.fileDeleted": "已删除「{name}」。",
  "status.indexed": "已索引", "status.failed": "失败", "status.skipped": "已跳过", "status.pending": "待处理",
  "status.unchanged": "未变化", "status.removed": "已移除",
  "job.upload": "上传 {n} 个文件", "job.sync": "同步", "job.rebuild": "重建", "job.preparing": "正在开始…",
  "job.uploading": "上传中… {pct}%", "job.queued": "等待索引…", "job.running": "正在索引：{done} / {total} 个文件",
  "job.done": "完成：{indexed} 个已索引，{failed} 个失败，{skipped} 个跳过，{removed} 个移除",
  "job.failed": "失败：{message}", "job.replace": "替换同名文件",
  "search.title": "检索测试", "search.placeholder": "输入问题，查看能检索到哪些段落",
  "search.run": "检索", "search.mode": "方式", "search.none": "没有段落的得分高于阈值。",
  "search.mode.hybrid": "混合", "search.mode.dense": "向量", "search.mode.bm25": "关键词（BM25）",
  "settings.intro": "此服务器的当前配置。请在 kbchat.toml 或 KBCHAT_* 环境变量中修改。",
  "settings.models": "对话模型", "settings.noModels": "没有配置对话模型。",
  "settings.modelsError": "无法加载模型列表：{message}",
  "settings.modelName": "名称", "settings.backend": "后端", "settings.model": "模型", "settings.baseUrl": "服务器地址",
  "settings.batch": "批大小", "settings.embedder": "向量模型", "settings.answering": "回答",
  "settings.noHitPolicy": "未检索到内容时", "settings.noHitMessage": "固定回复",
  "settings.noHit.refuse": "说明文档中没有答案。",
  "settings.noHit.fallback": "用模型自身知识回答，并注明来源。",
  "settings.noHit.message": "回复固定消息。",
  "settings.defaultModel": "默认模型", "settings.temperature": "温度", "settings.maxTokens": "回答最大词元数",
  "settings.fusion": "融合方式", "settings.ingest": "导入", "settings.maxFile": "单个文件上限（MB）", "settings.ocr": "文字识别（OCR）",
  "settings.home": "数据目录", "settings.unknown": "服务器未提供。",
  "settings.doctor": "健康检查", "settings.rerun": "重新检查", "settings.checking": "检查中…",
  "settings.doctorOk": "所有必需项均正常。", "settings.doctorBad": "{n} 项必需检查未通过。",
  "settings.optional": "可选", "settings.all": "全部设置", "settings.showAll": "以 JSON 显示",
};

export const STRINGS = { en, zh };
const listeners = new Set();

function initial() {
  const stored = localStorage.getItem(STORAGE_KEY);
  if (stored && STRINGS[stored]) return stored;
  const browser = (navigator.languages && navigator.languages[0]) || navigator.language || "en";
  return browser.toLowerCase().startsWith("zh") ? "zh" : "en";
}

let current = initial();
document.documentElement.lang = current === "zh" ? "zh-CN" : "en";

/** The interface language: "en" or "zh". */
export function lang() {
  return current;
}

/** Switch the interface language, remember it, and tell the listeners. */
export function setLang(next) {
  if (!STRINGS[next] || next === current) return;
  current = next;
  localStorage.setItem(STORAGE_KEY, next);
  document.documentElement.lang = next === "zh" ? "zh-CN" : "en";
  listeners.forEach((fn) => fn(next));
}

export function onLangChange(fn) {
  listeners.add(fn);
}

/**
 * The text for `key` in the current language, with {name} placeholders filled from `vars`;
 * {name|one|other} picks a word by whether vars[name] is 1.
 */
export function t(key, vars = {}) {
  const text = STRINGS[current][key] ?? en[key] ?? key;
  return text
    .replace(/\{(\w+)\|([^|}]*)\|([^}]*)\}/g, (match, name, one, other) => (name in vars ? (Number(vars[name]) === 1 ? one : other) : match))
    .replace(/\{(\w+)\}/g, (match, name) => (name in vars ? String(vars[name]) : match));
}

/** Translate the static page: elements with data-i18n get their text replaced. */
export function applyStatic(root) {
  root.querySelectorAll("[data-i18n]").forEach((el) => {
    el.textContent = t(el.dataset.i18n);
  });
}
