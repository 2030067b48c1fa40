// Microsoft's JavaScript Prediction SDK calling detectImage, as the Node quickstart does:
//   node tests/js/detect_image.js <endpoint> <prediction key> <project id> <publish name> <photo>
// Prints the ImagePrediction the SDK parsed, as JSON, on stdout.
const fs = require("fs");
const msRest = require("@azure/ms-rest-js");
const { PredictionAPIClient } = require("@azure/cognitiveservices-customvision-prediction");

async function main() {
  const [endpoint, key, projectId, publishName, photo] = process.argv.slice(2);
  const credentials = new msRest.ApiKeyCredentials({ inHeader: { "Prediction-key": key } });
  const predictor = new PredictionAPIClient(credentials, endpoint);
  const result = await predictor.detectImage(projectId, publishName, fs.readFileSync(photo));
  process.stdout.write(JSON.stringify({ id: result.id, predictions: result.predictions }));
}

main().catch((error) => {
  process.stderr.write(`${error.statusCode || ""} ${error.code || ""} ${error.message}\n`);
  process.exit(1);
});
