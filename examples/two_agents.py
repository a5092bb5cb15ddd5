"""The classic two-agent tutorial: an assistant writes code, a user proxy runs it.

Point it at any OpenAI-compatible server with environment variables:

    OPENAI_API_KEY=sk-...            python examples/two_agents.py      # OpenAI
    MOOT_BASE_URL=http://localhost:11434/v1 MOOT_MODEL=llama3.2 OPENAI_API_KEY=ollama \\
        python examples/two_agents.py                                    # a local Ollama

Code runs in ./workspace on this machine (use_docker=False); set MOOT_USE_DOCKER=1 to run it in
moot's Docker sandbox instead.
"""

import os

from moot.agents import AssistantAgent, UserProxyAgent

config_list = [
    {
        "model": os.environ.get("MOOT_MODEL", "gpt-4o"),
        "api_key": os.environ["OPENAI_API_KEY"],
        **({"base_url": os.environ["MOOT_BASE_URL"]} if os.environ.get("MOOT_BASE_URL") else {}),
    }
]
# or a local server:
# {"model": "llama3.2", "base_url": "http://localhost:11434/v1", "api_key": "ollama"}

assistant = AssistantAgent(
    name="data_scientist",
    llm_config={"config_list": config_list},
    system_message="You are a data scientist. Solve tasks with Python code in markdown code"
    " blocks; when the task is done, reply with a short summary that ends with TERMINATE.",
)
user_proxy = UserProxyAgent(
    name="executor",
    human_input_mode="NEVER",
    code_execution_config={
        "work_dir": "./workspace",
        "use_docker": os.environ.get("MOOT_USE_DOCKER", "") == "1",
    },
    max_consecutive_auto_reply=10,
)
result = user_proxy.initiate_chat(
    assistant,
    message="Compute the first 20 Fibonacci numbers and save them, one per line, to fib.txt.",
)

print("chat id:", result.chat_id)
print("messages:", len(result.chat_history))
print("summary:", result.summary)
print(
    f"cost: ${result.cost.total_cost:.6f} for {result.cost.prompt_tokens} prompt and"
    f" {result.cost.completion_tokens} completion tokens in {result.cost.calls} model calls"
)
