// The qflow lab runs IPFS without WebRTC (Swarm: []). ipfs-daemon imports wrtc / electron-webrtc in a try/catch and
// goes on without WebRTC when the import fails, which is what this stub does.
throw new Error('WebRTC is not available in the qflow lab (lab/ipfs/stubs/no-webrtc)')
