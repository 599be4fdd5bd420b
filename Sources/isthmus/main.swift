import IsthmusCLI
