//! Tool definitions offered to the model (Responses API `tools` entries),
//! with upstream's names and argument shapes.

use serde_json::{json, Value};

pub const EXEC_COMMAND: &str = "exec_command";
pub const APPLY_PATCH: &str = "apply_patch";
pub const UPDATE_PLAN: &str = "update_plan";

pub fn exec_command() -> Value {
    json!({
        "type": "function",
        "name": EXEC_COMMAND,
        "description": "Runs a shell command (bash -lc by default) in the workspace and returns its output and exit code once it finishes.",
        "strict": false,
        "parameters": {
            "type": "object",
            "properties": {
                "cmd": {"type": "string", "description": "Shell command to execute."},
                "workdir": {"type": "string", "description": "Working directory for the command. Defaults to the turn cwd."},
                "shell": {"type": "string", "description": "Shell binary to launch. Defaults to /bin/bash."},
                "login": {"type": "boolean", "description": "Run the shell with login semantics (-l). Defaults to true."},
                "tty": {"type": "boolean", "description": "Ignored: commands run with plain pipes."},
                "yield_time_ms": {"type": "number", "description": "Accepted for compatibility; commands run to completion (or to their deadline)."},
                "max_output_tokens": {"type": "number", "description": "Output token budget. Defaults to 10000 tokens; excess output is cut from the middle."},
                "sandbox_permissions": {"type": "string", "description": "Sandbox permissions for the command. Set to \"require_escalated\" to request running without sandbox restrictions; defaults to \"use_default\"."},
                "justification": {"type": "string", "description": "Only with sandbox_permissions = \"require_escalated\": a short question for the user explaining why the command must run outside the sandbox."},
                "prefix_rule": {"type": "array", "items": {"type": "string"}, "description": "Only with sandbox_permissions = \"require_escalated\": a command prefix the user could approve for future requests, e.g. [\"git\", \"pull\"]."}
            },
            "required": ["cmd"],
            "additionalProperties": false
        }
    })
}

pub fn apply_patch() -> Value {
    json!({
        "type": "function",
        "name": APPLY_PATCH,
        "description": APPLY_PATCH_DESCRIPTION,
        "strict": false,
        "parameters": {
            "type": "object",
            "properties": {
                "input": {"type": "string", "description": "The entire patch, from *** Begin Patch to *** End Patch."}
            },
            "required": ["input"],
            "additionalProperties": false
        }
    })
}

pub fn update_plan() -> Value {
    json!({
        "type": "function",
        "name": UPDATE_PLAN,
        "description": "Updates the task plan shown to the user.\nGive an optional explanation and the full list of steps, each with a status. At most one step is in_progress at a time.\n",
        "strict": false,
        "parameters": {
            "type": "object",
            "properties": {
                "explanation": {"type": "string"},
                "plan": {
                    "type": "array",
                    "description": "The list of steps",
                    "items": {
                        "type": "object",
                        "properties": {
                            "step": {"type": "string"},
                            "status": {"type": "string", "description": "One of: pending, in_progress, completed"}
                        },
                        "required": ["step", "status"],
                        "additionalProperties": false
                    }
                }
            },
            "required": ["plan"],
            "additionalProperties": false
        }
    })
}

const APPLY_PATCH_DESCRIPTION: &str = r#"Edit files with a patch. The patch format is a small, file-oriented diff:

*** Begin Patch
[one or more file operations]
*** End Patch

Each operation starts with a header:
*** Add File: <path>      create a file; every following line starts with + (the contents)
*** Delete File: <path>   remove a file; nothing follows
*** Update File: <path>   change a file in place; may be followed by *** Move to: <new path>

An update consists of hunks introduced by @@ (optionally followed by a line such as a class or function header that locates the hunk). Inside a hunk every line starts with ' ' (context), '-' (remove) or '+' (add). Show about 3 lines of context around each change; add more @@ lines when the context alone is ambiguous. End a hunk with *** End of File when it must match at the end of the file.

Example:
*** Begin Patch
*** Add File: hello.txt
+Hello world
*** Update File: src/app.py
*** Move to: src/main.py
@@ def greet():
-print("Hi")
+print("Hello, world!")
*** Delete File: obsolete.txt
*** End Patch

Paths are relative to the working directory. The whole patch is checked before anything is written: if any part does not apply, no file changes."#;
