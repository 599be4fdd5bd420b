import IsthmusCLI

await IsthmusCommand.runAsMain()
