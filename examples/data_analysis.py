"""The tutorial's data scientist: pandas and matplotlib code, run in the sandbox, a chart back.

The assistant writes Python; the executor runs it in moot's Docker sandbox with the "data"
profile (numpy, pandas, matplotlib and scipy from Debian, built into an image on first use,
about a minute, then cached). The sandbox has no network, so the input data is a file: this
script copies examples/data/prices.csv into the work dir before the chat, and everything the code
writes there (chart.png) comes back to ./workspace.

    OPENAI_API_KEY=sk-... python examples/data_analysis.py               # OpenAI
    moot model serve &  python examples/data_analysis.py                  # the embedded model
    MOOT_BASE_URL=http://localhost:11434/v1 MOOT_MODEL=llama3.2 python examples/data_analysis.py
"""

import os
import shutil
from pathlib import Path

from moot.agents import AssistantAgent, UserProxyAgent

WORK_DIR = Path("workspace")
PRICES = Path(__file__).resolve().parent / "data" / "prices.csv"

if os.environ.get("MOOT_BASE_URL"):
    base_url = os.environ["MOOT_BASE_URL"]
elif os.environ.get("OPENAI_API_KEY"):
    base_url = None
else:
    base_url = "http://127.0.0.1:8765/v1"  # `moot model serve`: the embedded offline model
config_list = [
    {
        "model": os.environ.get("MOOT_MODEL", "gpt-4o"),
        "api_key": os.environ.get("OPENAI_API_KEY", "not-needed"),
        **({"base_url": base_url} if base_url else {}),
    }
]

# Input files go in the work dir before the chat; the code sees them in its current directory.
WORK_DIR.mkdir(exist_ok=True)
shutil.copy(PRICES, WORK_DIR / "prices.csv")

data_scientist = AssistantAgent(
    name="data_scientist",
    llm_config={"config_list": config_list},
    system_message="You are a data scientist. Solve tasks with Python code in markdown code"
    " blocks, using pandas and matplotlib; the code runs in a sandbox without network, so use"
    " the files in the current directory and save charts as PNG files there. When the task is"
    " done, say which files hold the results and end with TERMINATE.",
)
executor = UserProxyAgent(
    name="executor",
    human_input_mode="NEVER",
    code_execution_config={"work_dir": str(WORK_DIR), "use_docker": True, "packages": "data"},
    max_consecutive_auto_reply=6,
)
result = executor.initiate_chat(
    data_scientist,
    message="prices.csv holds daily prices of the stock ACME (date, open, high, low, close,"
    " volume). Plot the closing price with the daily volume as bars below it, save the chart"
    " to chart.png, and print the year's first and last close.",
)

chart = WORK_DIR / "chart.png"
print("summary:", result.summary)
print("chart:", chart, f"{chart.stat().st_size} bytes" if chart.exists() else "(not written)")
