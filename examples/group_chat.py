"""The panel from issue 6: a planner, a coder, a reviewer and an executor solve a task, and the
manager's model picks who speaks next.

Point it at any OpenAI-compatible server with environment variables:

    OPENAI_API_KEY=sk-...            python examples/group_chat.py      # OpenAI
    MOOT_BASE_URL=http://localhost:11434/v1 MOOT_MODEL=llama3.2 OPENAI_API_KEY=ollama \\
        python examples/group_chat.py                                    # a local Ollama

Code runs in ./workspace on this machine (use_docker=False); set MOOT_USE_DOCKER=1 to run it in
moot's Docker sandbox instead. The chat ends when a message ends with TERMINATE, after 20
messages, or (moot's additions) past 200,000 tokens or when two agents go round in circles.
"""

import os

from moot.agents import (
    AssistantAgent,
    UserProxyAgent,
)
from moot.groupchat import (
    GroupChat,
    GroupChatManager,
    LoopDetection,
    TokenBudget,
)

config_list = [
    {
        "model": os.environ.get("MOOT_MODEL", "gpt-4o"),
        "api_key": os.environ["OPENAI_API_KEY"],
        **({"base_url": os.environ["MOOT_BASE_URL"]} if os.environ.get("MOOT_BASE_URL") else {}),
    }
]
llm_config = {"config_list": config_list}

planner = AssistantAgent(
    "planner",
    llm_config=llm_config,
    system_message="Break tasks into clear steps. Don't write code yourself.",
)
coder = AssistantAgent(
    "coder",
    llm_config=llm_config,
    system_message="Write clean Python code. Focus on correctness.",
)
reviewer = AssistantAgent(
    "reviewer",
    llm_config=llm_config,
    system_message="Review code for bugs and security issues. Be critical."
    " When the code is correct and its test passed, end your review with TERMINATE.",
)
executor = UserProxyAgent(
    "executor",
    human_input_mode="NEVER",
    code_execution_config={
        "work_dir": "workspace",
        "use_docker": os.environ.get("MOOT_USE_DOCKER", "") == "1",
    },
)
group_chat = GroupChat(agents=[planner, coder, reviewer, executor], messages=[], max_round=20)
manager = GroupChatManager(
    groupchat=group_chat,
    llm_config=llm_config,
    termination=TokenBudget(200_000) | LoopDetection(3),
)
result = executor.initiate_chat(
    manager,
    message="Write and test a function that checks whether a string is a palindrome,"
    " ignoring case, spaces and punctuation.",
)

print("chat id:", result.chat_id)
print("speakers:", " -> ".join(str(m.get("name")) for m in result.chat_history))
print("ended because:", manager.stop_reason(result.chat_id))
print("summary:", result.summary)
