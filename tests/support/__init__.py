"""What the tests share: processes (emulator, API), the fault harness, the browser, factories,
figures."""
