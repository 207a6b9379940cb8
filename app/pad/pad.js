// The drawing pad: black ink on white paper, 280x280, with pointer events so that a finger on a
// phone draws as a mouse does. It reports the drawing as a PNG data URL in its state "png" when a
// stroke ends, and an empty string after Clear.
export default function(component) {
  const { parentElement, setStateValue } = component;
  const canvas = parentElement.querySelector('canvas');
  const ctx = canvas.getContext('2d');
  if (!canvas.dataset.ready) {
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, canvas.width, canvas.height);
    canvas.dataset.ready = '1';
  }
  ctx.lineWidth = 18; ctx.lineCap = 'round'; ctx.lineJoin = 'round'; ctx.strokeStyle = '#000';
  let drawing = false;
  const at = (e) => { const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height]; };
  canvas.onpointerdown = (e) => { drawing = true; canvas.setPointerCapture(e.pointerId);
    const [x, y] = at(e); ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + 0.1, y); ctx.stroke(); };
  canvas.onpointermove = (e) => { if (!drawing) return; const [x, y] = at(e); ctx.lineTo(x, y); ctx.stroke(); };
  canvas.onpointerup = () => { if (!drawing) return; drawing = false; setStateValue('png', canvas.toDataURL('image/png')); };
  parentElement.querySelector('button').onclick = () => {
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, canvas.width, canvas.height); setStateValue('png', '');
  };
}
